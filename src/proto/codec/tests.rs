//! Tests of the decoders as a whole on hostile input: deterministic random garbage and
//! mutated valid frames must never panic, and whatever decodes must re-encode stably.

use super::test_support::*;
use super::*;
use crate::proto::opcode::OpCode;
use crate::proto::request::Decoded;

/// Seeded pseudo-random choices and bytes (the runs are the same every time).
struct Rng(rand::rngs::StdRng);

impl Rng {
    fn seeded(seed: u64) -> Rng {
        Rng(rand::SeedableRng::seed_from_u64(seed))
    }

    fn below(&mut self, n: usize) -> usize {
        rand::Rng::gen_range(&mut self.0, 0..n)
    }

    fn byte(&mut self) -> u8 {
        rand::Rng::gen(&mut self.0)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.byte()).collect()
    }
}

/// Whatever decodes must re-encode to something that decodes to the same value.
fn check_stable(bytes: &[u8]) {
    if let Ok((header, Decoded::Request(req))) = decode_request(bytes) {
        let frame = request_frame(header.xid, &req);
        let (_, again) = decode_request(body(&frame)).expect("re-encoded request must decode");
        assert_eq!(again, Decoded::Request(req));
    }
}

#[test]
fn random_garbage_never_panics() {
    let mut rng = Rng::seeded(0x9e37_79b9_7f4a_7c15);
    let mut decoded = 0;
    for _ in 0..20_000 {
        let len = rng.below(96);
        let mut bytes = rng.bytes(len);
        // Make a known opcode likely, so bodies get exercised and not only the header.
        if bytes.len() >= 8 && rng.below(4) != 0 {
            let ops = [
                1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22,
            ];
            let ops2 = [100, 101, 103, 104, 105, 106, 107, -11];
            let op = if rng.below(3) == 0 {
                ops2[rng.below(ops2.len())]
            } else {
                ops[rng.below(ops.len())]
            };
            bytes[4..8].copy_from_slice(&be(op));
        }
        if decode_request(&bytes).is_ok() {
            decoded += 1;
        }
        check_stable(&bytes);
        let _ = decode_connect(&bytes);
        let _ = decode_connect_response(&bytes);
        let _ = decode_reply_header(&bytes);
        let _ = decode_watcher_event(&bytes);
        let _ = decode_response(OpCode::Multi, &bytes);
        let _ = decode_response(OpCode::GetAcl, &bytes);
    }
    // Sanity: the generator reaches the decoders' success paths too (ping, whoAmI, ...).
    assert!(decoded > 100, "only {decoded} random frames decoded");
}

#[test]
fn mutated_valid_frames_never_panic() {
    let mut rng = Rng::seeded(0x0123_4567_89ab_cdef);
    let mut frames: Vec<Vec<u8>> = sample_requests()
        .iter()
        .map(|r| body(&request_frame(1, r)).to_vec())
        .collect();
    frames.push(CONNECT_3_4.to_vec());
    for _ in 0..20_000 {
        let mut bytes = frames[rng.below(frames.len())].clone();
        for _ in 0..=rng.below(4) {
            if bytes.is_empty() {
                break;
            }
            let at = rng.below(bytes.len());
            match rng.below(4) {
                // Lengths and counts are where the danger is: favour 0xff and 0x7f.
                0 => bytes[at] = 0xff,
                1 => bytes[at] = 0x7f,
                2 => bytes[at] = rng.byte(),
                _ => bytes.truncate(at),
            }
        }
        check_stable(&bytes);
        let _ = decode_connect(&bytes);
    }
}
