//! Where the server's log goes and how it is kept: stderr (the default: a terminal, or the
//! journal under systemd) or a file that rotates by size and by day, keeps a bounded number
//! of old files, and is reopened on SIGHUP for logrotate. Text or JSON lines; levels per
//! module.
//!
//! ```text
//! keeperd.log.file=/var/log/keeperd/keeperd.log   (or KEEPERD_LOG_FILE; `keeperd start`
//!                                                  sets it to $ZOO_LOG_DIR/keeperd.log)
//! keeperd.log.maxFileSize=100MB                    rotate past this size (0: never by size)
//! keeperd.log.daily=true                           rotate when the UTC day changes
//! keeperd.log.maxBackupIndex=10                    keep keeperd.log.1 .. keeperd.log.10
//! keeperd.log.format=text|json                     (or KEEPERD_LOG_FORMAT)
//! keeperd.log.level=info,keeperd::consensus=debug  (RUST_LOG wins when set)
//! ```
//!
//! Rotation renames `keeperd.log` to `keeperd.log.1`, `.1` to `.2` and so on; the file past
//! `maxBackupIndex` is overwritten, so the disk used is bounded by
//! `(maxBackupIndex + 1) x maxFileSize` plus one event. A write that fails (a full disk) is
//! dropped, never fatal: the log must not stop the server.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Log settings from zoo.cfg's `keeperd.log.*` keys (see the module comment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub file: Option<PathBuf>,
    pub max_file_size: u64,
    pub daily: bool,
    pub max_backup_index: usize,
    pub json: bool,
    pub level: Option<String>,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            file: None,
            max_file_size: 100 << 20,
            daily: true,
            max_backup_index: 10,
            json: false,
            level: None,
        }
    }
}

impl LogConfig {
    /// Applies one `keeperd.log.<name>` key; Err is the message for the zoo.cfg line.
    pub fn apply(&mut self, name: &str, value: &str) -> Result<(), String> {
        let value = value.trim();
        match name {
            "file" => self.file = (!value.is_empty()).then(|| PathBuf::from(value)),
            "maxFileSize" => self.max_file_size = parse_size(value)?,
            "daily" => {
                self.daily = match value.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(format!("{value:?} is not a boolean; use true or false")),
                }
            }
            "maxBackupIndex" => {
                self.max_backup_index = value
                    .parse()
                    .ok()
                    .filter(|&n: &usize| n <= 1000)
                    .ok_or_else(|| format!("{value:?} is not a number of files (0 to 1000)"))?
            }
            "format" => {
                self.json = match value.to_ascii_lowercase().as_str() {
                    "text" => false,
                    "json" => true,
                    _ => return Err(format!("{value:?} is not a log format; use text or json")),
                }
            }
            "level" => {
                tracing_subscriber::EnvFilter::try_new(value)
                    .map_err(|e| format!("{value:?} is not a level filter: {e}"))?;
                self.level = (!value.is_empty()).then(|| value.to_string());
            }
            _ => {
                return Err(
                    "unknown keeperd.log key (file, maxFileSize, daily, maxBackupIndex, \
                     format, level)"
                        .to_string(),
                )
            }
        }
        Ok(())
    }
}

/// `100MB`, `512KB`, `1GB`, `4096` (bytes), as log4j's MaxFileSize.
fn parse_size(value: &str) -> Result<u64, String> {
    let upper = value.to_ascii_uppercase();
    let (digits, unit) = match upper.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => upper.split_at(i),
        None => (upper.as_str(), ""),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{value:?} is not a size (e.g. 100MB)"))?;
    let unit = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" => 1 << 10,
        "M" | "MB" => 1 << 20,
        "G" | "GB" => 1 << 30,
        _ => return Err(format!("{value:?} is not a size (e.g. 100MB)")),
    };
    n.checked_mul(unit)
        .ok_or_else(|| format!("{value:?} is too large"))
}

fn utc_day(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        / 86_400
}

struct Inner {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    day: u64,
    max_size: u64,
    daily: bool,
    keep: usize,
}

impl Inner {
    fn open(&mut self) -> io::Result<()> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        let meta = file.metadata()?;
        self.size = meta.len();
        // A file left from an earlier day rotates at its first write today.
        self.day = meta.modified().map(utc_day).unwrap_or(self.day);
        self.file = Some(file);
        Ok(())
    }

    fn rotate(&mut self) {
        self.file = None;
        if self.keep == 0 {
            let _ = std::fs::remove_file(&self.path);
            return;
        }
        for i in (1..self.keep).rev() {
            let _ = std::fs::rename(numbered(&self.path, i), numbered(&self.path, i + 1));
        }
        let _ = std::fs::rename(&self.path, numbered(&self.path, 1));
    }

    fn write_event(&mut self, buf: &[u8], today: u64) -> io::Result<()> {
        if self.file.is_none() {
            self.open()?;
        }
        let too_big =
            self.max_size > 0 && self.size > 0 && self.size + buf.len() as u64 > self.max_size;
        let new_day = self.daily && self.size > 0 && today != self.day;
        if too_big || new_day {
            self.rotate();
            self.open()?;
        }
        self.day = today;
        let file = self.file.as_mut().expect("opened above");
        file.write_all(buf)?;
        self.size += buf.len() as u64;
        Ok(())
    }
}

fn numbered(path: &Path, i: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{i}"));
    PathBuf::from(name)
}

/// A log file that rotates (see the module comment). Cloning shares the file.
#[derive(Clone)]
pub struct RotatingFile {
    inner: Arc<Mutex<Inner>>,
    reopen: Arc<AtomicBool>,
    /// Tests set the clock; None = the system's.
    clock: Option<Arc<dyn Fn() -> SystemTime + Send + Sync>>,
}

impl RotatingFile {
    /// Opens (creating directories and the file) `path` for appending.
    pub fn open(path: &Path, config: &LogConfig) -> io::Result<RotatingFile> {
        let mut inner = Inner {
            path: path.to_path_buf(),
            file: None,
            size: 0,
            day: utc_day(SystemTime::now()),
            max_size: config.max_file_size,
            daily: config.daily,
            keep: config.max_backup_index,
        };
        inner.open()?;
        Ok(RotatingFile {
            inner: Arc::new(Mutex::new(inner)),
            reopen: Arc::new(AtomicBool::new(false)),
            clock: None,
        })
    }

    /// The same file with a clock of the caller's (tests of daily rotation).
    pub fn with_clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Makes the next write close and reopen the file by name (SIGHUP, after logrotate
    /// moved it away).
    pub fn reopen_handle(&self) -> Arc<AtomicBool> {
        self.reopen.clone()
    }

    /// Writes one formatted event (the fmt layer hands over a whole line at once).
    pub fn write_event(&self, buf: &[u8]) -> io::Result<()> {
        let now = self
            .clock
            .as_ref()
            .map(|c| c())
            .unwrap_or_else(SystemTime::now);
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if self.reopen.swap(false, Ordering::SeqCst) {
            inner.file = None;
        }
        let result = inner.write_event(buf, utc_day(now));
        if result.is_err() {
            // Try again with a fresh handle at the next event (the file may be gone).
            inner.file = None;
        }
        result
    }
}

/// The writer tracing's fmt layer gets for each event.
pub struct EventWriter(RotatingFile);

impl Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A failed log write is dropped: the log must never stop the server.
        let _ = self.0.write_event(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RotatingFile {
    type Writer = EventWriter;
    fn make_writer(&'a self) -> EventWriter {
        EventWriter(self.clone())
    }
}

/// Installs the global subscriber: `file` (if given, else stderr), text or JSON, the level
/// filter from RUST_LOG, else `keeperd.log.level`, else info. Returns the flag SIGHUP sets
/// to reopen the file, if logging to one.
pub fn init(config: &LogConfig, file: Option<&Path>) -> io::Result<Option<Arc<AtomicBool>>> {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(config.level.as_deref().unwrap_or("info"))
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match file {
        Some(path) => {
            let writer = RotatingFile::open(path, config)?;
            let reopen = writer.reopen_handle();
            let builder = builder.with_ansi(false).with_writer(writer);
            if config.json {
                builder.json().init()
            } else {
                builder.init()
            }
            Ok(Some(reopen))
        }
        None => {
            let builder = builder
                .with_writer(std::io::stderr)
                .with_ansi(!config.json && std::io::stderr().is_terminal());
            if config.json {
                builder.json().init()
            } else {
                builder.init()
            }
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg(max: u64, keep: usize, daily: bool) -> LogConfig {
        LogConfig {
            max_file_size: max,
            max_backup_index: keep,
            daily,
            ..LogConfig::default()
        }
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn rotates_by_size_and_keeps_max_backup_index_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/keeperd.log");
        let log = RotatingFile::open(&path, &cfg(100, 3, false)).unwrap();
        for i in 0..20 {
            // 25 bytes each: four per file.
            log.write_event(format!("event {i:02} xxxxxxxxxxxxx\n").as_bytes())
                .unwrap();
        }
        let current = read(&path);
        assert_eq!(current.lines().count(), 4, "{current}");
        assert!(current.starts_with("event 16"), "{current}");
        assert!(read(&numbered(&path, 1)).starts_with("event 12"));
        assert!(read(&numbered(&path, 2)).starts_with("event 08"));
        assert!(read(&numbered(&path, 3)).starts_with("event 04"));
        assert!(
            !numbered(&path, 4).exists(),
            "more than maxBackupIndex kept"
        );
        for i in 0..=3 {
            let p = if i == 0 {
                path.clone()
            } else {
                numbered(&path, i)
            };
            assert!(std::fs::metadata(&p).unwrap().len() <= 100);
        }
    }

    #[test]
    fn rotates_when_the_day_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keeperd.log");
        let now = Arc::new(Mutex::new(SystemTime::now()));
        let clock = now.clone();
        let log = RotatingFile::open(&path, &cfg(0, 5, true))
            .unwrap()
            .with_clock(move || *clock.lock().unwrap());
        log.write_event(b"today\n").unwrap();
        log.write_event(b"still today\n").unwrap();
        *now.lock().unwrap() += Duration::from_secs(86_400);
        log.write_event(b"tomorrow\n").unwrap();
        assert_eq!(read(&path), "tomorrow\n");
        assert_eq!(read(&numbered(&path, 1)), "today\nstill today\n");
    }

    #[test]
    fn reopens_after_logrotate_moved_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keeperd.log");
        let log = RotatingFile::open(&path, &cfg(0, 5, false)).unwrap();
        log.write_event(b"before\n").unwrap();
        let moved = dir.path().join("keeperd.log-20261206");
        std::fs::rename(&path, &moved).unwrap();
        log.write_event(b"still into the moved file\n").unwrap();
        log.reopen_handle().store(true, Ordering::SeqCst);
        log.write_event(b"after\n").unwrap();
        assert_eq!(read(&moved), "before\nstill into the moved file\n");
        assert_eq!(read(&path), "after\n");
    }

    #[test]
    fn a_failed_write_is_not_fatal_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/keeperd.log");
        let log = RotatingFile::open(&path, &cfg(0, 1, false)).unwrap();
        std::fs::remove_dir_all(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub"), b"a file where the dir was").unwrap();
        log.reopen_handle().store(true, Ordering::SeqCst);
        let mut writer = tracing_subscriber::fmt::MakeWriter::make_writer(&log);
        assert_eq!(writer.write(b"lost\n").unwrap(), 5, "errors are swallowed");
        std::fs::remove_file(dir.path().join("sub")).unwrap();
        writer.write_all(b"back\n").unwrap();
        assert_eq!(read(&path), "back\n");
    }

    #[test]
    fn keys_parse_and_bad_values_explain_themselves() {
        let mut c = LogConfig::default();
        c.apply("maxFileSize", "10MB").unwrap();
        assert_eq!(c.max_file_size, 10 << 20);
        c.apply("maxFileSize", "512kb").unwrap();
        assert_eq!(c.max_file_size, 512 << 10);
        c.apply("maxFileSize", "4096").unwrap();
        assert_eq!(c.max_file_size, 4096);
        c.apply("format", "JSON").unwrap();
        assert!(c.json);
        c.apply("level", "info,keeperd::consensus=debug").unwrap();
        assert_eq!(c.level.as_deref(), Some("info,keeperd::consensus=debug"));
        c.apply("file", "/var/log/keeperd/keeperd.log").unwrap();
        assert_eq!(c.file, Some(PathBuf::from("/var/log/keeperd/keeperd.log")));
        for (k, v, why) in [
            ("maxFileSize", "ten", "is not a size"),
            ("maxFileSize", "10TB", "is not a size"),
            ("maxFileSize", "99999999999999999999", "is not a size"),
            ("maxFileSize", "99999999999GB", "too large"),
            ("daily", "yes", "not a boolean"),
            ("maxBackupIndex", "-1", "not a number of files"),
            ("format", "xml", "not a log format"),
            ("level", "info,[[[", "not a level filter"),
            ("colour", "on", "unknown keeperd.log key"),
        ] {
            let e = c.apply(k, v).unwrap_err();
            assert!(e.contains(why), "{k}={v}: {e}");
        }
    }
}
