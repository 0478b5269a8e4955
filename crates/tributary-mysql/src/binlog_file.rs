//! Binlog files read from disk into change events. Every event is checked
//! before `mysql_common` parses it (header complete, size plausible, body
//! present, CRC32 checksum right), so a truncated or corrupt file gives a
//! [`DecodeError`] naming the file and the byte offset, never a panic or a hang.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use mysql_common::binlog::consts::{BinlogChecksumAlg, BinlogVersion, EventType};
use mysql_common::binlog::events::{BinlogEventHeader, Event, FormatDescriptionEvent};
use mysql_common::binlog::BinlogFileHeader;
use tributary_core::ChangeEvent;

use crate::decoder::{BinlogDecoder, DecodeError, SchemaResolver, TableMapResolver};

/// Reads every event of the binlog file at `path` into change events, with
/// schemas taken from the TABLE_MAP events ([`TableMapResolver`]).
pub fn read_binlog_file(path: &Path) -> Result<Vec<ChangeEvent>, DecodeError> {
    let mut events = Vec::new();
    decode_binlog_file(path, TableMapResolver::new(), |e| events.push(e))?;
    Ok(events)
}

/// Decodes the binlog file at `path` with `resolver`, handing each change
/// event to `sink` as soon as it is complete (so the events before an error
/// have been delivered when the error returns). Returns the decoder, whose
/// [`BinlogDecoder::position`] is the end of the file.
pub fn decode_binlog_file<R: SchemaResolver>(
    path: &Path,
    resolver: R,
    mut sink: impl FnMut(ChangeEvent),
) -> Result<BinlogDecoder<R>, DecodeError> {
    let mut reader = BinlogFileReader::open(path)?;
    let mut decoder = BinlogDecoder::new(resolver, reader.file_name().to_string());
    decoder.set_error_file(reader.path().to_string());
    let mut out = Vec::new();
    while let Some((start, event)) = reader.next_event()? {
        let result = decoder.decode_file_event(&event, start, &mut out);
        out.drain(..).for_each(&mut sink);
        result?;
    }
    Ok(decoder)
}

/// Reads the events of one binlog file, checking each before parsing it.
pub struct BinlogFileReader {
    path: String,
    file_name: String,
    input: BufReader<File>,
    offset: u64,
    len: u64,
    fde: FormatDescriptionEvent<'static>,
}

impl BinlogFileReader {
    /// Opens the file and checks its magic bytes.
    pub fn open(path: &Path) -> Result<Self, DecodeError> {
        let display = path.display().to_string();
        let io_err = |source| DecodeError::Io { file: display.clone(), source };
        let file = File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        let mut input = BufReader::with_capacity(1 << 16, file);
        let mut magic = [0u8; BinlogFileHeader::LEN];
        let got = read_up_to(&mut input, &mut magic).map_err(io_err)?;
        if got < magic.len() || magic != BinlogFileHeader::VALUE {
            return Err(DecodeError::NotABinlog { file: display });
        }
        let file_name = path.file_name().map_or_else(|| display.clone(), |n| n.to_string_lossy().into_owned());
        Ok(BinlogFileReader {
            path: display,
            file_name,
            input,
            offset: BinlogFileHeader::LEN as u64,
            len,
            fde: FormatDescriptionEvent::new(BinlogVersion::Version4),
        })
    }

    /// The path as given, for messages.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The file's name without directories (what positions carry).
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// The next event with the byte offset it starts at; `Ok(None)` at the end of the file.
    pub fn next_event(&mut self) -> Result<Option<(u64, Event)>, DecodeError> {
        let start = self.offset;
        let remaining = self.len.saturating_sub(start);
        let event = match read_event(&self.fde, &mut self.input, Some(remaining)) {
            Ok(Some(event)) => event,
            Ok(None) => return Ok(None),
            Err(ReadError::Truncated(detail)) => {
                return Err(DecodeError::Truncated { file: self.path.clone(), offset: start, detail })
            }
            Err(ReadError::Invalid(reason)) => return Err(self.corrupt(start, "binlog", reason)),
            Err(ReadError::Io(source)) => return Err(DecodeError::Io { file: self.path.clone(), source }),
        };
        self.offset += u64::from(event.header().event_size());
        self.verify_checksum(&event, start)?;
        if event.header().event_type_raw() == EventType::FORMAT_DESCRIPTION_EVENT as u8 {
            let fde = event
                .read_event::<FormatDescriptionEvent<'_>>()
                .map_err(|e| self.corrupt(start, "FORMAT_DESCRIPTION", e.to_string()))?;
            self.fde = fde.into_owned().with_footer(event.footer());
        }
        Ok(Some((start, event)))
    }

    fn verify_checksum(&self, event: &Event, start: u64) -> Result<(), DecodeError> {
        let alg = event.footer().get_checksum_alg();
        if let (Ok(Some(alg @ BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32)), Some(stored)) = (alg, event.checksum()) {
            let computed = event.calc_checksum(alg);
            let stored = u32::from_le_bytes(stored);
            if stored != computed {
                let name = event.header().event_type().map_or_else(|e| format!("type {}", e.0), |t| format!("{t:?}"));
                return Err(self.corrupt(
                    start,
                    &name,
                    format!("CRC32 checksum {stored:#010x} does not match the content ({computed:#010x})"),
                ));
            }
        }
        Ok(())
    }

    fn corrupt(&self, offset: u64, event: &str, reason: String) -> DecodeError {
        DecodeError::Corrupt { file: self.path.clone(), offset, event: event.to_string(), reason }
    }
}

/// Why an event could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The input ends inside the event.
    Truncated(String),
    /// The event's header or bytes make no sense.
    Invalid(String),
    Io(io::Error),
}

/// Reads one event from `input` with `fde`'s layout, checking its header
/// first; `remaining` bounds its size when the input length is known.
/// `Ok(None)` when the input ends cleanly before the event.
pub(crate) fn read_event<R: Read>(
    fde: &FormatDescriptionEvent<'static>,
    input: &mut R,
    remaining: Option<u64>,
) -> Result<Option<Event>, ReadError> {
    const HEADER: usize = BinlogEventHeader::LEN;
    let mut header = [0u8; HEADER];
    let got = read_up_to(input, &mut header).map_err(ReadError::Io)?;
    if got == 0 {
        return Ok(None);
    }
    if got < HEADER {
        return Err(ReadError::Truncated(format!("the input ends {got} bytes into a {HEADER}-byte event header")));
    }
    let size = u64::from(u32::from_le_bytes([header[9], header[10], header[11], header[12]]));
    let min = HEADER as u64 + checksum_len(fde, header[4]);
    if size < min {
        return Err(ReadError::Invalid(format!(
            "the event header gives a size of {size} bytes, below the minimum of {min}"
        )));
    }
    if let Some(remaining) = remaining {
        if size > remaining {
            return Err(ReadError::Truncated(format!(
                "the event header (type {}) announces {size} bytes but only {remaining} remain",
                header[4]
            )));
        }
    }
    let mut bytes = vec![0u8; size as usize];
    bytes[..HEADER].copy_from_slice(&header);
    let got = read_up_to(input, &mut bytes[HEADER..]).map_err(ReadError::Io)?;
    if got < bytes.len() - HEADER {
        return Err(ReadError::Truncated(format!("the input ends {} bytes into a {size}-byte event", HEADER + got)));
    }
    match catch_unwind(AssertUnwindSafe(|| Event::read(fde, &bytes[..]))) {
        Ok(Ok(event)) => Ok(Some(event)),
        Ok(Err(e)) => Err(ReadError::Invalid(e.to_string())),
        Err(_) => Err(ReadError::Invalid("the event cannot be parsed".into())),
    }
}

/// Bytes of checksum an event of `event_type` ends with under `fde`.
fn checksum_len(fde: &FormatDescriptionEvent<'_>, event_type: u8) -> u64 {
    if event_type == EventType::FORMAT_DESCRIPTION_EVENT as u8 {
        return 0; // the FDE describes its own checksum; its parser checks the length
    }
    let footer = fde.footer();
    let on = !matches!(footer.get_checksum_alg(), Ok(None) | Ok(Some(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_OFF)));
    if on && footer.get_checksum_enabled() {
        4
    } else {
        0
    }
}

/// Fills `buf` as far as the input goes; returns how many bytes were read.
fn read_up_to<R: Read>(input: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
