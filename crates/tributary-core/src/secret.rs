//! A wrapper that keeps passwords out of `Debug`, `Display` and logs, and
//! the reading of a password file (`password_file = "/run/secrets/..."`).

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::path::Path;

/// A secret string (a password). Printing it shows `***`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself; call only where it is handed to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// True when no secret was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// A password read from a file by [`read_secret_file`].
#[derive(Debug)]
pub struct SecretFile {
    pub secret: Secret,
    /// The file's permission bits when every user may read it (`0o644`), for a warning.
    pub world_readable_mode: Option<u32>,
}

/// Reads a password file: its content without one trailing newline (`\n` or
/// `\r\n`, as `echo` and editors leave it). The error is one line with the
/// cause and the fix, and never contains the file's content; `field` names
/// the setting (`source.password_file`, `TRIBUTARY_SOURCE_PASSWORD_FILE`).
pub fn read_secret_file(path: &Path, field: &str) -> Result<SecretFile, String> {
    let bytes = std::fs::read(path).map_err(|e| {
        let fix = match e.kind() {
            std::io::ErrorKind::NotFound => {
                "create it with the password, or point the setting at the file that holds it"
            }
            std::io::ErrorKind::PermissionDenied => "let the user running tributary read it",
            _ => "point the setting at a readable file holding the password",
        };
        format!("{field}: cannot read {} ({}); {fix}", path.display(), io_reason(&e))
    })?;
    let mut text = String::from_utf8(bytes)
        .map_err(|_| format!("{field}: {} is not UTF-8 text; write the password as text", path.display()))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(format!(
            "{field}: {} is empty; write the password into it (one trailing newline is ignored)",
            path.display()
        ));
    }
    let world_readable_mode = world_readable(path);
    Ok(SecretFile { secret: Secret(text), world_readable_mode })
}

/// `No such file or directory` without the ` (os error 2)` suffix.
fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

#[cfg(unix)]
fn world_readable(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o004 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn world_readable(_path: &Path) -> Option<u32> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the temp dir (no tempfile dependency in core).
    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tributary-core-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_password_file_loses_one_trailing_newline_and_reports_world_readable_modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("pwfile");
        let path = dir.join("pw");
        for (content, want) in
            [("s3cret\n", "s3cret"), ("s3cret\r\n", "s3cret"), ("s3cret", "s3cret"), ("a b\n\n", "a b\n")]
        {
            std::fs::write(&path, content).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            let read = read_secret_file(&path, "source.password_file").unwrap();
            assert_eq!(read.secret.expose(), want);
            assert_eq!(read.world_readable_mode, None);
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(read_secret_file(&path, "f").unwrap().world_readable_mode, Some(0o644));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_or_empty_password_file_is_one_line_with_the_fix() {
        let dir = temp_dir("pwfile-bad");
        let missing = dir.join("nope");
        let err = read_secret_file(&missing, "source.password_file").unwrap_err();
        assert!(
            err.starts_with("source.password_file: cannot read ") && err.contains("No such file or directory"),
            "{err}"
        );
        assert!(err.contains("create it") && !err.contains('\n') && !err.contains("os error"), "{err}");
        let empty = dir.join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let err = read_secret_file(&empty, "source.password_file").unwrap_err();
        assert!(err.contains("is empty; write the password into it"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }
}
