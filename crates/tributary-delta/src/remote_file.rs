//! The files of a table on an object store, written and read the way object
//! storage wants: a file is uploaded part by part while parquet produces it
//! ([`StreamedUpload`]), and read by byte ranges ([`read_remote`]): the footer
//! with one request for the file's last 64 KiB, then only the column chunks a
//! reader asks for (the key columns of a file the planner searches, the row
//! groups holding the rows it needs), adjacent ranges merged into one request
//! by object_store's `get_ranges`.
//!
//! parquet's own `ParquetObjectReader` does the reading part too but is
//! deprecated since parquet 59.2 in favour of implementing `AsyncFileReader`,
//! which [`RangeReader`] does in a few lines. Both run on the storage IO
//! runtime ([`crate::storage::block_on_io`]), so callers stay synchronous.

use crate::storage::{block_on_io, io_runtime, StoreError};
use bytes::Bytes;
use deltalake::arrow::array::RecordBatch;
use deltalake::logstore::object_store::path::Path as StorePath;
use deltalake::logstore::object_store::{MultipartUpload, ObjectStoreExt as _, PutPayload};
use deltalake::logstore::ObjectStoreRef;
use deltalake::parquet::arrow::arrow_reader::ArrowReaderOptions;
use deltalake::parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use deltalake::parquet::errors::{ParquetError, Result as ParquetResult};
use deltalake::parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use futures_util::future::{BoxFuture, FutureExt as _};
use futures_util::TryStreamExt as _;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

/// Size of each uploaded part (S3 wants at least 5 MiB but for the last);
/// a file that fits in one part goes up in one PUT.
pub(crate) const PART_BYTES: usize = 8 * 1024 * 1024;

/// Parts being uploaded while the next one fills; a file being written holds
/// at most `1 + PARTS_IN_FLIGHT` parts in memory whatever its size.
const PARTS_IN_FLIGHT: usize = 2;

/// Bytes fetched from the end of a file for its footer (one request covers
/// the metadata of any file Tributary writes; larger footers cost a second).
const FOOTER_PREFETCH: usize = 64 * 1024;

/// A remote file written as it is produced (see the module comment). Nothing
/// is visible under its name until [`StreamedUpload::finish`]: a multipart
/// upload that is dropped unfinished is aborted.
pub(crate) struct StreamedUpload {
    store: ObjectStoreRef,
    location: StorePath,
    part: Vec<u8>,
    upload: Option<Box<dyn MultipartUpload>>,
    in_flight: VecDeque<tokio::task::JoinHandle<Result<(), StoreError>>>,
    size: u64,
}

impl StreamedUpload {
    pub fn new(store: ObjectStoreRef, rel_path: &str) -> Self {
        StreamedUpload {
            store,
            location: StorePath::from(rel_path),
            part: Vec::new(),
            upload: None,
            in_flight: VecDeque::new(),
            size: 0,
        }
    }

    /// Sends the filled part and waits while too many are on their way.
    fn send_part(&mut self) -> Result<(), StoreError> {
        let part = std::mem::take(&mut self.part);
        let upload = match &mut self.upload {
            Some(upload) => upload,
            None => {
                let (store, location) = (self.store.clone(), self.location.clone());
                self.upload.insert(block_on_io(async move { store.put_multipart(&location).await })?)
            }
        };
        self.in_flight.push_back(io_runtime().spawn(upload.put_part(PutPayload::from(part))));
        while self.in_flight.len() > PARTS_IN_FLIGHT {
            self.wait_oldest()?;
        }
        Ok(())
    }

    fn wait_oldest(&mut self) -> Result<(), StoreError> {
        let Some(task) = self.in_flight.pop_front() else { return Ok(()) };
        block_on_io(task).unwrap_or_else(|e| Err(StoreError::JoinError { source: e }))
    }

    /// Stores what is left and makes the file visible; returns its size.
    pub fn finish(mut self) -> Result<u64, StoreError> {
        let size = self.size;
        if self.upload.is_none() {
            let (store, location, bytes) = (self.store.clone(), self.location.clone(), std::mem::take(&mut self.part));
            block_on_io(async move { store.put(&location, PutPayload::from(bytes)).await })?;
            return Ok(size);
        }
        if !self.part.is_empty() {
            self.send_part()?;
        }
        while !self.in_flight.is_empty() {
            self.wait_oldest()?;
        }
        let mut upload = self.upload.take().expect("a multipart upload was started");
        block_on_io(async move { upload.complete().await })?;
        Ok(size)
    }
}

impl std::io::Write for StreamedUpload {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.part.extend_from_slice(buf);
        self.size += buf.len() as u64;
        if self.part.len() >= PART_BYTES {
            self.send_part().map_err(std::io::Error::other)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for StreamedUpload {
    fn drop(&mut self) {
        // Unfinished (an error, or the file was discarded): the parts sent go.
        if let Some(mut upload) = self.upload.take() {
            for task in self.in_flight.drain(..) {
                task.abort();
            }
            let _ = block_on_io(async move { upload.abort().await });
        }
    }
}

/// Reads byte ranges of one remote file of known size (parquet's async reader input).
struct RangeReader {
    store: ObjectStoreRef,
    location: StorePath,
    size: u64,
}

impl AsyncFileReader for RangeReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, ParquetResult<Bytes>> {
        async move { self.store.get_range(&self.location, range).await.map_err(store_err) }.boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, ParquetResult<Vec<Bytes>>> {
        async move { self.store.get_ranges(&self.location, &ranges).await.map_err(store_err) }.boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, ParquetResult<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let reader = ParquetMetaDataReader::new().with_prefetch_hint(Some(FOOTER_PREFETCH));
            Ok(Arc::new(reader.load_and_finish(self, size).await?))
        }
        .boxed()
    }
}

fn store_err(e: StoreError) -> ParquetError {
    ParquetError::External(Box::new(e))
}

/// Reads the `columns` (by name; `None`: all) of the sorted `rows` (`None`:
/// all) of a remote parquet file of `size` bytes, fetching only the byte
/// ranges that hold them.
pub(crate) fn read_remote(
    store: ObjectStoreRef,
    rel_path: &str,
    size: u64,
    columns: Option<Vec<String>>,
    rows: Option<Vec<usize>>,
    batch_rows: usize,
) -> ParquetResult<Vec<RecordBatch>> {
    let reader = RangeReader { store, location: StorePath::from(rel_path), size };
    block_on_io(async move {
        let builder = ParquetRecordBatchStreamBuilder::new(reader).await?;
        if let Some(batches) = crate::files::from_statistics(&builder, columns.as_deref(), rows.as_deref()) {
            return Ok(batches);
        }
        let builder = crate::files::narrow(builder, columns.as_deref(), rows.as_deref());
        builder.with_batch_size(batch_rows).build()?.try_collect::<Vec<_>>().await
    })
}

#[cfg(test)]
mod tests {
    //! Against the test kit's S3 server (moto on loopback): a file larger
    //! than a part goes up in parts and reads back; a read of one column
    //! fetches a fraction of the file; an abandoned upload leaves nothing.

    use super::*;
    use crate::files::read_part;
    use crate::storage::{register_root, StorageOptions, TableFiles};
    use deltalake::arrow::array::{AsArray, Int64Array, StringArray};
    use deltalake::arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use deltalake::parquet::arrow::ArrowWriter;
    use std::io::Write as _;
    use std::path::Path;

    const ROWS: i64 = 400_000;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("text", DataType::Utf8, false),
        ]));
        // Text that does not compress (a hash per row), so the file spans several parts.
        let text: StringArray = (0..ROWS)
            .map(|i| Some(format!("{:032x}", (i as u128 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C))))
            .collect();
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..ROWS)), Arc::new(text)]).unwrap()
    }

    #[test]
    fn large_files_go_up_in_parts_and_one_column_is_read_by_range() {
        let Some(s3) =
            tributary_testkit::require("the S3 test server (moto; `make setup`)", tributary_testkit::S3Server::start())
        else {
            return;
        };
        let root = s3.url("lake");
        let options = StorageOptions(s3.sink_storage_options());
        register_root(Path::new(&root), &options).unwrap();
        let files = TableFiles::of(Path::new(&format!("{root}/t"))).unwrap();
        let TableFiles::Remote { store, .. } = &files else { panic!("an s3:// table is remote") };

        let data = batch();
        let counts = || s3.request_counts().unwrap();
        let before = counts();
        let mut writer =
            ArrowWriter::try_new(StreamedUpload::new(store.clone(), "big.parquet"), data.schema(), None).unwrap();
        writer.write(&data).unwrap();
        let size = writer.into_inner().unwrap().finish().unwrap();
        let after = counts();
        let served =
            |key: &str, a: &std::collections::BTreeMap<String, u64>, b: &std::collections::BTreeMap<String, u64>| {
                a.get(key).copied().unwrap_or(0) - b.get(key).copied().unwrap_or(0)
            };
        assert!(size as usize > 2 * PART_BYTES, "the file spans parts ({size} bytes)");
        // CreateMultipartUpload and CompleteMultipartUpload are POSTs, each part a PUT.
        assert_eq!(served("POST", &after, &before), 2, "{after:?}");
        assert!(served("PUT", &after, &before) as usize >= size as usize / PART_BYTES, "{after:?}");

        // One column: the footer and that column's chunks, a fraction of the file.
        let before = counts();
        let ids = read_part(&files, "big.parquet", size as i64, Some(&["id".to_string()]), None).unwrap();
        let after = counts();
        let read: Vec<i64> =
            ids.iter().flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec()).collect();
        assert_eq!(read, (0..ROWS).collect::<Vec<_>>());
        assert!(ids.iter().all(|b| b.num_columns() == 1));
        let bytes = served("GET_BYTES", &after, &before);
        eprintln!(
            "file {size} bytes; reading the id column fetched {bytes} bytes in {} GETs",
            served("GET", &after, &before)
        );
        assert!(bytes < size / 4, "read {bytes} of {size} bytes for one narrow column");

        // Some rows, whole.
        let rows = [5usize, 200_000, 200_001, 399_999];
        let some = read_part(&files, "big.parquet", size as i64, None, Some(&rows)).unwrap();
        let some = deltalake::arrow::compute::concat_batches(&data.schema(), &some).unwrap();
        assert_eq!(some.num_rows(), rows.len());
        for (i, &r) in rows.iter().enumerate() {
            assert_eq!(some.column(0).as_primitive::<Int64Type>().value(i), r as i64);
            assert_eq!(some.column(1).as_string::<i32>().value(i), data.column(1).as_string::<i32>().value(r));
        }

        // An upload dropped after its first part leaves no object behind.
        let mut abandoned = StreamedUpload::new(store.clone(), "abandoned.parquet");
        abandoned.write_all(&vec![7u8; PART_BYTES + 1]).unwrap();
        assert!(abandoned.upload.is_some(), "a part went up");
        drop(abandoned);
        let missing = read_part(&files, "abandoned.parquet", 10, None, None);
        assert!(missing.is_err(), "nothing is stored under the name of an abandoned upload");
    }
}
