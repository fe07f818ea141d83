//! Four-letter words on the client port. (Wiring to admin/ in progress.)

use super::Shared;

pub fn parse(first4: &[u8]) -> Option<&'static str> {
    match first4 {
        b"ruok" => Some("ruok"),
        b"srvr" => Some("srvr"),
        _ => None,
    }
}

pub fn answer(_shared: &Shared, word: &str) -> String {
    match word {
        "ruok" => "imok".to_string(),
        _ => String::new(),
    }
}
