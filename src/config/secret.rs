//! The quorum secret file (`keeperd.quorum.secretFile`): what counts as a secret. Read here,
//! where zoo.cfg is checked, so a bad file is refused with the line that names it; used by
//! `consensus::peer_auth` (peer authentication) and the server (session passwords).

use std::path::Path;

/// The shortest secret accepted.
pub const MIN_SECRET: usize = 16;

/// The secret in `bytes`: trailing whitespace (a file's final newline) is not part of it.
pub fn parse_secret(bytes: &[u8]) -> Result<&[u8], String> {
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let secret = &bytes[..end];
    if secret.len() < MIN_SECRET {
        return Err(format!(
            "the quorum secret has {} bytes; at least {MIN_SECRET} are needed",
            secret.len()
        ));
    }
    Ok(secret)
}

/// The secret in the file at `path`.
pub fn read_secret(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read the quorum secret {}: {e}", path.display()))?;
    parse_secret(&bytes)
        .map(<[u8]>::to_vec)
        .map_err(|e| format!("{}: {e}", path.display()))
}
