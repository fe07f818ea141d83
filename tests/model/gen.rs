//! Generation of the random operations: depends only on the rng and the model, so a seed
//! replays exactly.

use super::tree::{depth, join, MOp, Mode};
use super::{Run, MAX_DEPTH, NAMES, SLOTS};

/// One step of a sequence, as the history shows it.
#[derive(Clone, Debug)]
pub enum Op {
    Create {
        slot: usize,
        path: String,
        data: String,
        mode: Mode,
    },
    Delete {
        slot: usize,
        path: String,
        version: Option<i32>,
    },
    SetData {
        slot: usize,
        path: String,
        data: String,
        version: Option<i32>,
    },
    GetData {
        slot: usize,
        path: String,
    },
    Exists {
        slot: usize,
        path: String,
    },
    GetChildren {
        slot: usize,
        path: String,
    },
    Multi {
        slot: usize,
        ops: Vec<MOp>,
    },
    CloseSession {
        slot: usize,
    },
    OpenSession {
        slot: usize,
    },
    Restart,
}

impl Run {
    fn gen_data(&mut self) -> String {
        let n = self.rng.below(6);
        (0..n)
            .map(|_| char::from(b'a' + self.rng.below(26) as u8))
            .collect()
    }

    fn fixed_path(&mut self, max_depth: usize) -> String {
        let depth = 1 + self.rng.below(max_depth);
        let mut path = String::new();
        for _ in 0..depth {
            path.push('/');
            path.push_str(NAMES[self.rng.below(NAMES.len())]);
        }
        path
    }

    /// An existing node other than the root, at most `max_depth` deep.
    fn existing(&mut self, max_depth: usize) -> Option<String> {
        let candidates: Vec<&String> = self
            .model
            .nodes
            .keys()
            .filter(|p| p.as_str() != "/" && depth(p) <= max_depth)
            .collect();
        let picked = self.rng.pick(&candidates).map(|p| p.to_string());
        picked
    }

    /// A path to read, write or delete: often an existing node, sometimes the root.
    fn target(&mut self, allow_root: bool) -> String {
        let roll = if self.likely { 0 } else { self.rng.below(10) };
        match roll {
            0..=5 => match self.existing(MAX_DEPTH + 1) {
                Some(p) => p,
                None => self.fixed_path(MAX_DEPTH),
            },
            6 if allow_root => "/".to_owned(),
            _ => self.fixed_path(MAX_DEPTH),
        }
    }

    fn gen_mode(&mut self) -> Mode {
        match self.rng.below(20) {
            0..=7 => Mode::Persistent,
            8..=12 => Mode::Ephemeral,
            13..=16 => Mode::PersistentSequential,
            _ => Mode::EphemeralSequential,
        }
    }

    /// The path argument of a create (for a sequential node, the prefix).
    fn create_path(&mut self, mode: Mode) -> String {
        let name = NAMES[self.rng.below(NAMES.len())];
        let roll = if self.likely { 1 } else { self.rng.below(8) };
        let parent = match roll {
            0 => Some("/".to_owned()),
            1..=4 => self.existing(MAX_DEPTH - 1),
            _ => None,
        };
        match (mode.is_sequential(), parent) {
            (true, Some(parent)) => join(&parent, "s-"),
            (true, None) => {
                let parent = self.fixed_path(MAX_DEPTH - 1);
                join(&parent, "s-")
            }
            (false, Some(parent)) => join(&parent, name),
            (false, None) => self.fixed_path(MAX_DEPTH),
        }
    }

    /// -1, the node's current version, a version off by one, or any small number.
    fn gen_version(&mut self, path: &str) -> Option<i32> {
        let current = self.model.nodes.get(path).map_or(0, |n| n.version);
        let roll = if self.likely { 3 } else { self.rng.below(10) };
        match roll {
            0..=2 => None,
            3..=7 => Some(current),
            8 => Some(current + 1),
            _ => Some(self.rng.below(3) as i32),
        }
    }

    fn gen_mop(&mut self) -> MOp {
        match self.rng.below(4) {
            0 => {
                let mode = self.gen_mode();
                MOp::Create {
                    path: self.create_path(mode),
                    data: self.gen_data(),
                    mode,
                }
            }
            1 => {
                let path = self.target(false);
                MOp::Delete {
                    version: self.gen_version(&path),
                    path,
                }
            }
            2 => {
                let path = self.target(true);
                MOp::SetData {
                    version: self.gen_version(&path),
                    data: self.gen_data(),
                    path,
                }
            }
            _ => {
                let path = self.target(true);
                MOp::Check {
                    version: self.gen_version(&path).unwrap_or(-1),
                    path,
                }
            }
        }
    }

    pub fn gen_op(&mut self) -> Op {
        let open: Vec<usize> = (0..SLOTS).filter(|&i| self.slots[i].is_some()).collect();
        let closed: Vec<usize> = (0..SLOTS).filter(|&i| self.slots[i].is_none()).collect();
        let Some(&slot) = self.rng.pick(&open) else {
            return Op::OpenSession { slot: closed[0] };
        };
        match self.rng.below(100) {
            0..=24 => {
                let mode = self.gen_mode();
                Op::Create {
                    slot,
                    path: self.create_path(mode),
                    data: self.gen_data(),
                    mode,
                }
            }
            25..=38 => {
                let path = self.target(false);
                Op::Delete {
                    slot,
                    version: self.gen_version(&path),
                    path,
                }
            }
            39..=50 => {
                let path = self.target(true);
                Op::SetData {
                    slot,
                    version: self.gen_version(&path),
                    data: self.gen_data(),
                    path,
                }
            }
            51..=58 => Op::GetData {
                slot,
                path: self.target(true),
            },
            59..=65 => Op::Exists {
                slot,
                path: self.target(true),
            },
            66..=73 => Op::GetChildren {
                slot,
                path: self.target(true),
            },
            74..=91 => {
                let n = 1 + self.rng.below(4);
                // Half the multis pick ops likely to succeed, or few would commit.
                self.likely = self.rng.below(2) == 0;
                let ops = (0..n).map(|_| self.gen_mop()).collect();
                self.likely = false;
                Op::Multi { slot, ops }
            }
            92..=95 => Op::CloseSession { slot },
            _ => match self.rng.pick(&closed) {
                Some(&slot) => Op::OpenSession { slot },
                None => Op::GetChildren {
                    slot,
                    path: self.target(true),
                },
            },
        }
    }
}
