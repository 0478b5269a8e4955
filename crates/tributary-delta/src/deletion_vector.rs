//! Deletion vectors: the sets of row indexes (positions, from 0, within one
//! parquet data file) a Delta `add` action marks deleted without rewriting the
//! file, written and read byte for byte as the Delta protocol specifies
//! (PROTOCOL.md, "Deletion Vectors", "Deletion Vector Descriptor Schema" and
//! the appendix "Deletion Vector Format" / "Deletion Vector File Storage
//! Format").
//!
//! A vector is serialized as the magic number 1681511377 (u32 little endian)
//! followed by a 64-bit roaring bitmap in the "portable" format of the
//! RoaringFormatSpec: the number of 32-bit buckets (u64 LE), then per bucket in
//! ascending order its key, the high 32 bits (u32 LE), and a standard 32-bit
//! RoaringBitmap of the low 32 bits; `roaring::RoaringTreemap` writes exactly
//! that. Keys must have their top bit clear (Java reads them signed), so row
//! indexes stay below 2^63. The [`DeletionVectorDescriptor`] of an `add` says
//! where the bytes are:
//! - `i` (inline): `pathOrInlineDv` is the Z85 text of the bytes, zero-padded
//!   to a multiple of 4 as Delta's `Base85Codec` does; `sizeInBytes` is their
//!   unpadded length ("raw data size, i.e. before base85 encoding"); no offset.
//! - `u` (a file `deletion_vector_<uuid>.bin` in the table directory):
//!   `pathOrInlineDv` is the Z85 text of the UUID's 16 bytes (20 characters,
//!   no random prefix). The file is a format-version byte `1`, then per vector
//!   its size (u32 BIG endian), the magic + bitmap bytes and their CRC-32
//!   (u32 BIG endian). `offset` is where the vector's size field starts (1
//!   for the first vector), `sizeInBytes` the size field's value: magic +
//!   bitmap, without the size field and the checksum.
//!
//! The protocol's own inline example ("JSON Example 3") decodes to Delta
//! Spark's *native* layout instead (magic 1681511376, big-endian header),
//! which delta-kernel refuses; only the 32-bit bitmap inside is the same. We
//! write the portable layout the format section specifies, as Delta Spark and
//! delta-kernel write it.
//!
//! `cardinality` is the number of rows the vector deletes. Reading goes
//! through deltalake's kernel ([`read`]): `DeletionVectorDescriptor::read` of
//! delta-kernel, the reader delta-rs itself uses, which checks the version,
//! size, magic and checksum.

use crate::storage::TableFiles;
use crate::DeltaError;
use deltalake::kernel::{DeletionVectorDescriptor, StorageType};
use deltalake::DeltaTable;
use roaring::RoaringTreemap;
use std::path::{Path, PathBuf};

/// The magic number in front of every serialized vector (little endian).
pub(crate) const PORTABLE_MAGIC: u32 = 1_681_511_377;

/// The first byte of a deletion-vector file: its format version.
pub(crate) const FILE_FORMAT_VERSION: u8 = 1;

/// Where new vectors are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Inline in the log (tests only: readers must take them, the writer
    /// never writes them).
    #[cfg_attr(not(test), allow(dead_code))]
    Inline,
    /// In a `.bin` file beside the data: what the writer always does. Delta
    /// Spark 3.x writes only such vectors, and its DELETE / UPDATE / MERGE
    /// fail with `scala.MatchError: Some(DeletionVectorDescriptor(i, ...))`
    /// on a file whose existing vector is inline (test
    /// `spark_mariadb::spark_vacuum_and_a_users_delete_work_on_a_streaming_table_and_streaming_goes_on`);
    /// Spark only reads inline vectors.
    File,
}

/// A vector's bytes: the magic number, then the portable 64-bit bitmap.
pub(crate) fn serialize(rows: &RoaringTreemap) -> Result<Vec<u8>, String> {
    if let Some(max) = rows.max().filter(|m| *m >= 1 << 63) {
        return Err(format!("row index {max} is 2^63 or more; deletion vectors hold row indexes below 2^63"));
    }
    let mut bytes = Vec::with_capacity(4 + rows.serialized_size());
    bytes.extend_from_slice(&PORTABLE_MAGIC.to_le_bytes());
    rows.serialize_into(&mut bytes).map_err(|e| format!("serialize the bitmap: {e}"))?;
    if bytes.len() > i32::MAX as usize {
        return Err(format!("the vector takes {} bytes, more than sizeInBytes (an int) can say", bytes.len()));
    }
    Ok(bytes)
}

/// The descriptors of `vectors`, in order, stored as `placement` says. The
/// vectors that go to a file all go to one new `deletion_vector_<uuid>.bin`
/// in `table_dir`, written here (not synced: a commit naming it syncs it, see
/// [`crate::durable`]). (Tests; the writer uses [`store_in`].)
#[cfg(test)]
pub(crate) fn store(
    table_dir: &Path,
    vectors: &[&RoaringTreemap],
    placement: Placement,
) -> Result<Vec<DeletionVectorDescriptor>, DeltaError> {
    Ok(store_in(&TableFiles::Local(table_dir.to_path_buf()), table_dir, vectors, placement)?.0)
}

/// The descriptors of stored vectors, and the `.bin` file written for them
/// (relative path, size), if any.
pub(crate) type StoredVectors = (Vec<DeletionVectorDescriptor>, Option<(String, u64)>);

/// [`store`] for the table whose files are `files` (local or remote; `table`
/// names it in errors); also returns the relative path and size of the `.bin`
/// file written, if any (a commit that fails must delete it).
pub(crate) fn store_in(
    files: &TableFiles,
    table: &Path,
    vectors: &[&RoaringTreemap],
    placement: Placement,
) -> Result<StoredVectors, DeltaError> {
    let unsupported = |problem: String| DeltaError::Unsupported { table: table.to_path_buf(), problem };
    let mut file = DvFile::new();
    let mut out = Vec::with_capacity(vectors.len());
    for rows in vectors {
        let bytes = serialize(rows).map_err(unsupported)?;
        out.push(if placement == Placement::Inline {
            inline_descriptor(&bytes, rows.len())
        } else {
            file.push(&bytes, rows.len())
        });
    }
    let written = if file.vectors > 0 { Some(file.write(files, table)?) } else { None };
    Ok((out, written))
}

/// A data file's deletion vector: where it is stored and the rows it deletes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Deleted {
    pub descriptor: DeletionVectorDescriptor,
    pub rows: RoaringTreemap,
}

/// The deletion vectors of the active data files of the table's loaded
/// state, read (by [`read`]) into `index`; files without one keep `None`.
pub(crate) async fn load_into(table: &DeltaTable, index: &mut crate::files::FileIndex) -> Result<(), DeltaError> {
    let state = table.snapshot().map_err(|e| DeltaError::delta(&table_location(table), "load", e))?;
    let vectors: Vec<(String, DeletionVectorDescriptor)> = state
        .log_data()
        .iter()
        .filter_map(|f| f.deletion_vector_descriptor().map(|dv| (crate::files::percent_decode(f.path().as_ref()), dv)))
        .collect();
    for (path, descriptor) in vectors {
        let rows = read(table, &descriptor).await?;
        if let Some(entry) = index.files.get_mut(&path) {
            entry.deleted = Some(std::sync::Arc::new(Deleted { descriptor, rows }));
        }
    }
    Ok(())
}

fn table_location(table: &DeltaTable) -> PathBuf {
    crate::durable::local_dir(table).unwrap_or_else(|| PathBuf::from(table.table_url().as_str()))
}

/// The inline descriptor of serialized `bytes`.
pub(crate) fn inline_descriptor(bytes: &[u8], cardinality: u64) -> DeletionVectorDescriptor {
    let mut padded = bytes.to_vec();
    padded.resize(bytes.len().div_ceil(4) * 4, 0);
    DeletionVectorDescriptor {
        storage_type: StorageType::Inline,
        // A multiple of 4 bytes: plain Z85, never the z85 crate's `#` tail.
        path_or_inline_dv: z85::encode(&padded),
        offset: None,
        size_in_bytes: bytes.len() as i32,
        cardinality: cardinality as i64,
    }
}

/// A deletion-vector file being assembled in memory.
struct DvFile {
    uuid: uuid::Uuid,
    bytes: Vec<u8>,
    vectors: usize,
}

impl DvFile {
    fn new() -> Self {
        DvFile { uuid: uuid::Uuid::new_v4(), bytes: vec![FILE_FORMAT_VERSION], vectors: 0 }
    }

    /// Appends serialized `data`; its descriptor points into this file.
    fn push(&mut self, data: &[u8], cardinality: u64) -> DeletionVectorDescriptor {
        let offset = self.bytes.len();
        self.bytes.extend_from_slice(&(data.len() as u32).to_be_bytes());
        self.bytes.extend_from_slice(data);
        self.bytes.extend_from_slice(&crc32fast::hash(data).to_be_bytes());
        self.vectors += 1;
        DeletionVectorDescriptor {
            storage_type: StorageType::UuidRelativePath,
            path_or_inline_dv: z85::encode(self.uuid.as_bytes()),
            offset: Some(offset as i32),
            size_in_bytes: data.len() as i32,
            cardinality: cardinality as i64,
        }
    }

    /// Writes the file (a new name: never over another file) among `files`;
    /// returns its path relative to the table and its size.
    fn write(self, files: &TableFiles, table: &Path) -> Result<(String, u64), DeltaError> {
        let rel_path = file_name(&self.uuid);
        let size = self.bytes.len() as u64;
        files.put_new(&rel_path, self.bytes).map_err(|e| e.into_delta(table))?;
        Ok((rel_path, size))
    }
}

fn file_name(uuid: &uuid::Uuid) -> String {
    format!("deletion_vector_{uuid}.bin")
}

/// The local file holding a vector stored in a file (`u` or `p`), or `None`
/// for an inline one: `<table>/<random prefix>/deletion_vector_<uuid>.bin`
/// (protocol, "Derived Fields").
pub(crate) fn file_path(table_dir: &Path, dv: &DeletionVectorDescriptor) -> Result<Option<PathBuf>, String> {
    match dv.storage_type {
        StorageType::Inline => Ok(None),
        StorageType::AbsolutePath => Ok(Some(crate::files::resolve(table_dir, &dv.path_or_inline_dv))),
        StorageType::UuidRelativePath => {
            let encoded = dv.path_or_inline_dv.as_bytes();
            let Some(split) = encoded.len().checked_sub(20) else {
                return Err(format!("pathOrInlineDv {:?} is shorter than a Z85 UUID", dv.path_or_inline_dv));
            };
            let uuid = z85::decode(&encoded[split..])
                .ok()
                .and_then(|b| uuid::Uuid::from_slice(&b).ok())
                .ok_or_else(|| format!("pathOrInlineDv {:?} does not end in a Z85 UUID", dv.path_or_inline_dv))?;
            let prefix = std::str::from_utf8(&encoded[..split]).map_err(|e| e.to_string())?;
            Ok(Some(table_dir.join(prefix).join(file_name(&uuid))))
        }
    }
}

/// The row indexes `dv` deletes, read by delta-kernel's reader (the one
/// delta-rs uses) from the log (inline) or the table's storage (files): it
/// checks the file version, the size against `sizeInBytes`, the magic number
/// and the CRC-32. The bitmap's cardinality must equal the descriptor's.
pub(crate) async fn read(table: &DeltaTable, dv: &DeletionVectorDescriptor) -> Result<RoaringTreemap, DeltaError> {
    let mut url = table.table_url().clone();
    if !url.path().ends_with('/') {
        url.set_path(&format!("{}/", url.path()));
    }
    let table_dir = crate::durable::local_dir(table).unwrap_or_else(|| PathBuf::from(url.as_str()));
    let corrupt = |problem: String| DeltaError::Corrupt { table: table_dir.clone(), problem };
    let kernel_dv: delta_kernel::actions::deletion_vector::DeletionVectorDescriptor =
        dv.clone().try_into().map_err(|e| corrupt(format!("deletion vector {dv:?}: {e}")))?;
    let engine = table.log_store().engine(None);
    // The kernel's storage handler blocks on its own executor.
    let read = tokio::task::spawn_blocking(move || kernel_dv.read(engine.storage_handler(), &url))
        .await
        .map_err(|e| corrupt(format!("the deletion vector reader stopped: {e}")))?;
    let rows = match read {
        Ok(rows) => rows,
        Err(delta_kernel::Error::DeletionVector(problem)) => {
            return Err(corrupt(format!("deletion vector {}: {problem}", describe(dv))))
        }
        Err(e) => return Err(DeltaError::delta(&table_dir, "read a deletion vector", e.into())),
    };
    if rows.len() != dv.cardinality as u64 {
        return Err(corrupt(format!(
            "deletion vector {} holds {} rows, its descriptor says cardinality {}",
            describe(dv),
            rows.len(),
            dv.cardinality
        )));
    }
    Ok(rows)
}

/// A short name of a vector for messages.
fn describe(dv: &DeletionVectorDescriptor) -> String {
    match dv.storage_type {
        StorageType::Inline => format!("inline ({} bytes)", dv.size_in_bytes),
        _ => format!("{}{}@{}", dv.storage_type, dv.path_or_inline_dv, dv.offset.unwrap_or(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table location with a log store (the kernel reader needs one); no log.
    fn table_at(dir: &Path) -> DeltaTable {
        crate::table::unloaded(dir).unwrap()
    }

    async fn round_trip(rows: &RoaringTreemap, placement: Placement) -> (DeletionVectorDescriptor, RoaringTreemap) {
        let dir = tempfile::tempdir().unwrap();
        let dv = store(dir.path(), &[rows], placement).unwrap().remove(0);
        let back = read(&table_at(dir.path()), &dv).await.unwrap();
        (dv, back)
    }

    /// Pseudo-random row indexes (xorshift, fixed seed) below `bound`.
    fn scattered(n: usize, bound: u64) -> RoaringTreemap {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % bound
            })
            .collect()
    }

    #[test]
    fn the_protocols_inline_example_has_the_same_32_bit_bitmap() {
        // PROTOCOL.md, "JSON Example 3 — Inline": rows 3, 4, 7, 11, 18, 29,
        // sizeInBytes 40. Its text decodes to Delta Spark's *native* layout
        // (magic 1681511376, then big-endian bitmap count and size) rather than
        // the portable one the format section specifies and delta-kernel reads;
        // the 28 bytes of the 32-bit RoaringBitmap after that header are the
        // same in both, and must be ours byte for byte.
        let example = z85::decode("wi5b=000010000siXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L").unwrap();
        assert_eq!(example.len(), 40);
        assert_eq!(u32::from_be_bytes(example[0..4].try_into().unwrap()), PORTABLE_MAGIC - 1);
        let rows: RoaringTreemap = [3, 4, 7, 11, 18, 29].into_iter().collect();
        let ours = serialize(&rows).unwrap();
        assert_eq!(ours.len(), 4 + 8 + 4 + 28);
        assert_eq!(&ours[16..], &example[12..]);

        let dir = tempfile::tempdir().unwrap();
        let dv = store(dir.path(), &[&rows], Placement::Inline).unwrap().remove(0);
        assert_eq!(
            serde_json::to_value(&dv).unwrap(),
            serde_json::json!({"storageType": "i", "pathOrInlineDv": "^Bg9^0rr910000000000iXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L",
                "sizeInBytes": 44, "cardinality": 6})
        );
        // Not a multiple of 4 bytes: zero-padded before Z85, sizeInBytes unpadded.
        let three = RoaringTreemap::from_iter([1u64, 2, 3]);
        let odd = store(dir.path(), &[&three], Placement::Inline).unwrap().remove(0);
        assert_eq!(odd.size_in_bytes, 4 + 8 + 4 + 16 + 3 * 2);
        assert_eq!(odd.path_or_inline_dv.len(), 40 / 4 * 5);
        assert!(!odd.path_or_inline_dv.contains('#'), "{}", odd.path_or_inline_dv);
    }

    #[test]
    fn the_bytes_are_the_magic_then_the_portable_64_bit_layout() {
        let rows: RoaringTreemap = [5u64, (1 << 32) + 9].into_iter().collect();
        let bytes = serialize(&rows).unwrap();
        assert_eq!(&bytes[0..4], &1_681_511_377u32.to_le_bytes());
        assert_eq!(&bytes[4..12], &2u64.to_le_bytes(), "two 32-bit buckets");
        assert_eq!(&bytes[12..16], &0u32.to_le_bytes(), "first bucket key");
        let mut low = Vec::new();
        roaring::RoaringBitmap::from_iter([5u32]).serialize_into(&mut low).unwrap();
        assert_eq!(&bytes[16..16 + low.len()], &low[..]);
        assert_eq!(&bytes[16 + low.len()..20 + low.len()], &1u32.to_le_bytes(), "second bucket key");
        assert!(serialize(&RoaringTreemap::from_iter([1u64 << 63])).unwrap_err().contains("2^63"));
    }

    #[test]
    fn a_file_matches_delta_kernels_own_writer_byte_for_byte() {
        use delta_kernel::actions::deletion_vector_writer::{KernelDeletionVector, StreamingDeletionVectorWriter};
        let vectors = [scattered(3000, 1 << 20), (100..50_000).collect(), RoaringTreemap::from_iter([7u64])];
        let dir = tempfile::tempdir().unwrap();
        let ours = store(dir.path(), &vectors.iter().collect::<Vec<_>>(), Placement::File).unwrap();
        let mut theirs = Vec::new();
        let mut writer = StreamingDeletionVectorWriter::new(&mut theirs);
        let mut results = Vec::new();
        for rows in &vectors {
            let mut dv = KernelDeletionVector::new();
            dv.add_deleted_row_indexes(rows.iter());
            results.push(writer.write_deletion_vector(dv).unwrap());
        }
        writer.finalize().unwrap();
        let path = file_path(dir.path(), &ours[0]).unwrap().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), theirs);
        assert_eq!(ours[0].offset, Some(1), "the first vector starts after the version byte");
        for (dv, result) in ours.iter().zip(&results) {
            assert_eq!(
                (dv.offset, dv.size_in_bytes, dv.cardinality),
                (Some(result.offset), result.size_in_bytes, result.cardinality)
            );
            assert_eq!(dv.storage_type, StorageType::UuidRelativePath);
            assert_eq!(dv.path_or_inline_dv, ours[0].path_or_inline_dv, "one file for all");
        }
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("deletion_vector_") && name.ends_with(".bin"), "{name}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn vectors_read_back_inline_and_from_files() {
        let cases: Vec<(&str, RoaringTreemap)> = vec![
            ("empty", RoaringTreemap::new()),
            ("one row", RoaringTreemap::from_iter([0u64])),
            ("one late row", RoaringTreemap::from_iter([1_000_003u64])),
            ("dense range", (10..200_000).collect()),
            ("two ranges", (0..5000).chain(70_000..140_000).collect()),
            ("3000 scattered", scattered(3000, 10_000_000)),
            ("beyond 2^32", [1u64, (1 << 32) + 1, (5 << 32) + 77].into_iter().collect()),
        ];
        for (name, rows) in &cases {
            for placement in [Placement::Inline, Placement::File] {
                let (dv, back) = round_trip(rows, placement).await;
                assert_eq!(&back, rows, "{name} {placement:?}");
                assert_eq!(dv.cardinality as u64, rows.len(), "{name} {placement:?}");
                assert_eq!(dv.size_in_bytes as usize, serialize(rows).unwrap().len(), "{name} {placement:?}");
            }
        }
        let (small, _) = round_trip(&scattered(10, 1000), Placement::File).await;
        assert_eq!(small.storage_type, StorageType::UuidRelativePath, "even a small vector goes to a file");
    }

    #[tokio::test]
    async fn the_second_vector_of_a_file_reads_from_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let a: RoaringTreemap = (0..10).collect();
        let b: RoaringTreemap = [3u64, 999, 4096].into_iter().collect();
        let dvs = store(dir.path(), &[&a, &b], Placement::File).unwrap();
        assert_eq!(dvs[1].offset, Some(1 + 4 + dvs[0].size_in_bytes + 4));
        let table = table_at(dir.path());
        assert_eq!(read(&table, &dvs[0]).await.unwrap(), a);
        assert_eq!(read(&table, &dvs[1]).await.unwrap(), b);
    }

    #[tokio::test]
    async fn a_damaged_file_or_descriptor_is_refused_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let rows = scattered(500, 100_000);
        let dv = store(dir.path(), &[&rows], Placement::File).unwrap().remove(0);
        let path = file_path(dir.path(), &dv).unwrap().unwrap();
        let table = table_at(dir.path());
        let good = std::fs::read(&path).unwrap();

        // One flipped bit in the bitmap: the CRC-32 no longer matches.
        let mut bad = good.clone();
        bad[20] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        let err = read(&table, &dv).await.unwrap_err();
        assert!(matches!(err, DeltaError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("CRC32 checksum mismatch"), "{err}");
        std::fs::write(&path, &good).unwrap();

        let wrong_size = DeletionVectorDescriptor { size_in_bytes: dv.size_in_bytes - 1, ..dv.clone() };
        let err = read(&table, &wrong_size).await.unwrap_err();
        assert!(matches!(err, DeltaError::Corrupt { .. }) && err.to_string().contains("size mismatch"), "{err}");

        let wrong_count = DeletionVectorDescriptor { cardinality: dv.cardinality + 1, ..dv.clone() };
        let err = read(&table, &wrong_count).await.unwrap_err();
        assert!(err.to_string().contains(&format!("cardinality {}", dv.cardinality + 1)), "{err}");
        assert!(!err.to_string().contains('\n'), "{err}");

        assert_eq!(read(&table, &dv).await.unwrap(), rows);
        std::fs::remove_file(&path).unwrap();
        assert!(read(&table, &dv).await.is_err());
    }
}
