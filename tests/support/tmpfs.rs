//! A small tmpfs mounted by a test, to fill a server's disk (root only: CI runs as root;
//! elsewhere [`Tmpfs::mount`] returns None and the test says it is skipped).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs, unmounted on drop.
pub struct Tmpfs {
    pub dir: PathBuf,
    _parent: Option<tempfile::TempDir>,
}

fn mount(dir: &Path, size: &str) -> bool {
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success())
}

impl Tmpfs {
    /// A tmpfs of `size` on a fresh directory.
    pub fn mount(size: &str) -> Option<Tmpfs> {
        let parent = tempfile::tempdir().ok()?;
        let dir = parent.path().join("disk");
        std::fs::create_dir(&dir).ok()?;
        mount(&dir, size).then_some(Tmpfs {
            dir,
            _parent: Some(parent),
        })
    }

    /// A tmpfs of `size` over the existing directory `dir` (what it held is hidden).
    pub fn mount_on(dir: &Path, size: &str) -> Option<Tmpfs> {
        mount(dir, size).then(|| Tmpfs {
            dir: dir.to_path_buf(),
            _parent: None,
        })
    }

    pub fn grow(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {}", self.dir.display());
    }

    /// Fills what is left of the tmpfs with `name` (writes until ENOSPC); returns the
    /// bytes written.
    pub fn fill(&self, name: &str) -> u64 {
        use std::io::Write;
        let mut f = std::fs::File::create(self.dir.join(name)).expect("create the filler");
        let chunk = vec![0u8; 64 * 1024];
        let mut total = 0;
        while let Ok(n) = f.write(&chunk) {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        total
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}
