//! Crash-safe file output: write to a temporary file in the destination folder, fsync, then
//! rename over the target, so readers see either the old file or the complete new one.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// `fs::create_dir_all`, naming the culprit when a file stands where a folder must be (the
/// plain error, "File exists", names neither the file nor the problem).
fn create_dir_all(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir).map_err(|e| {
        match dir
            .ancestors()
            .find(|p| p.exists() && !p.is_dir() && !p.as_os_str().is_empty())
        {
            Some(file) => io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is a file, not a folder", file.display()),
            ),
            None => e,
        }
    })
}

/// Writes `bytes` to `path` atomically (temp file in the same folder, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// Writes a file atomically through a caller-supplied writer; the file only appears at `path`
/// when `fill` succeeds.
pub fn write_atomic_with<F>(path: &Path, fill: F) -> io::Result<()>
where
    F: FnOnce(&mut io::BufWriter<&mut fs::File>) -> io::Result<()>,
{
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".rankdistill-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    {
        let mut writer = io::BufWriter::new(tmp.as_file_mut());
        fill(&mut writer)?;
        writer.flush()?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Replaces the directory `dest` with a fully written one: `fill` populates a fresh staging
/// folder beside `dest`, which is then renamed into place. An existing `dest` is moved aside
/// first and removed only after the new one is in place.
pub fn replace_dir_atomic<F>(dest: &Path, fill: F) -> io::Result<()>
where
    F: FnOnce(&Path) -> io::Result<()>,
{
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    create_dir_all(parent)?;
    let staging = tempfile::Builder::new()
        .prefix(".rankdistill-staging-")
        .tempdir_in(parent)?;
    fill(staging.path())?;
    let staged = staging.keep();
    if dest.exists() {
        let old = tempfile::Builder::new()
            .prefix(".rankdistill-old-")
            .tempdir_in(parent)?
            .keep();
        fs::remove_dir(&old)?;
        fs::rename(dest, &old)?;
        if let Err(e) = fs::rename(&staged, dest) {
            // Put the previous version back so nothing already written is lost.
            let _ = fs::rename(&old, dest);
            return Err(e);
        }
        fs::remove_dir_all(&old)?;
    } else {
        fs::rename(&staged, dest)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_file_in_place_of_a_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, b"x").unwrap();
        let err = write_atomic(&file.join("sub/a.txt"), b"one").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{} is a file, not a folder", file.display())
        );
        let err = replace_dir_atomic(&file.join("d"), |_| Ok(())).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotADirectory);
    }

    #[test]
    fn failed_fill_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        write_atomic(&path, b"old").unwrap();
        let err = write_atomic_with(&path, |_| Err(io::Error::other("boom")));
        assert!(err.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn directory_replacement_keeps_old_on_failure_and_swaps_on_success() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("d");
        replace_dir_atomic(&dest, |p| fs::write(p.join("x"), b"1")).unwrap();
        assert!(replace_dir_atomic(&dest, |_| Err(io::Error::other("boom"))).is_err());
        assert_eq!(fs::read(dest.join("x")).unwrap(), b"1");
        replace_dir_atomic(&dest, |p| fs::write(p.join("y"), b"2")).unwrap();
        assert!(!dest.join("x").exists());
        assert_eq!(fs::read(dest.join("y")).unwrap(), b"2");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
