//! Length-prefixed framing. Separates "need more bytes" from "invalid" before anything is
//! consumed, so a connection can read into a buffer and retry.

use super::error::{Error, Result};

/// Looks at the front of `buf`: `Ok(None)` when a whole frame is not there yet,
/// `Ok(Some(n))` when the first frame's body is `buf[4..4 + n]`, and
/// `Err(FrameTooLarge)` when the declared length is negative or above `max`.
pub fn check_frame(buf: &[u8], max: usize) -> Result<Option<usize>> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 0 || len as usize > max {
        return Err(Error::FrameTooLarge {
            len: len.max(0) as usize,
            max,
        });
    }
    let len = len as usize;
    if buf.len() < 4 + len {
        return Ok(None);
    }
    Ok(Some(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_complete_and_too_large() {
        assert_eq!(check_frame(&[0, 0], 10).unwrap(), None);
        assert_eq!(check_frame(&[0, 0, 0, 2, 1], 10).unwrap(), None);
        assert_eq!(check_frame(&[0, 0, 0, 2, 1, 2], 10).unwrap(), Some(2));
        assert!(check_frame(&[0, 0, 0, 11], 10).is_err());
        assert!(check_frame(&[0xff, 0xff, 0xff, 0xff], 10).is_err());
    }
}
