//! Reading the store's files without ever waiting on one: a FIFO or a device where a file
//! should be (put there by mistake, or by a script) would otherwise hang `mycli token` and
//! every shell prompt that runs `mycli prompt`.

use std::io::Read;
use std::path::Path;

/// Opens `path` for reading without blocking: a FIFO opens at once instead of waiting for a
/// writer.
pub fn open_no_wait(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits().cast_signed());
    }
    options.open(path)
}

/// The bytes of the regular file at `path`; anything else (a FIFO, a device, a directory) is
/// an error of kind `InvalidInput`, "not a regular file".
pub fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = open_no_wait(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    // The size is the file's word, not a fact: a sparse file claims terabytes it does not
    // hold, and an allocation that fails aborts the process.
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(
            usize::try_from(meta.len())
                .unwrap_or(usize::MAX)
                .saturating_add(1),
        )
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::OutOfMemory, "too large to read"))?;
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Like [`read`], as UTF-8 text.
pub fn read_to_string(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read(path)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_or_a_directory_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        )
        .unwrap();
        assert_eq!(
            read(&fifo).unwrap_err().kind(),
            std::io::ErrorKind::InvalidInput
        );
        assert_eq!(
            read(dir.path()).unwrap_err().kind(),
            std::io::ErrorKind::InvalidInput
        );
        let file = dir.path().join("f");
        std::fs::write(&file, "text").unwrap();
        assert_eq!(read_to_string(&file).unwrap(), "text");
    }
}
