//! Opcodes of the client protocol (ZooDefs.OpCode).

/// Request types as they appear in RequestHeader.type and MultiHeader.type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum OpCode {
    Notification = 0,
    Create = 1,
    Delete = 2,
    Exists = 3,
    GetData = 4,
    SetData = 5,
    GetAcl = 6,
    SetAcl = 7,
    GetChildren = 8,
    Sync = 9,
    Ping = 11,
    GetChildren2 = 12,
    Check = 13,
    Multi = 14,
    Create2 = 15,
    Reconfig = 16,
    CheckWatches = 17,
    RemoveWatches = 18,
    CreateContainer = 19,
    DeleteContainer = 20,
    CreateTtl = 21,
    MultiRead = 22,
    Auth = 100,
    SetWatches = 101,
    Sasl = 102,
    GetEphemerals = 103,
    GetAllChildrenNumber = 104,
    SetWatches2 = 105,
    AddWatch = 106,
    WhoAmI = 107,
    CreateSession = -10,
    CloseSession = -11,
    Error = -1,
}

impl OpCode {
    pub fn from_i32(v: i32) -> Option<OpCode> {
        use OpCode::*;
        Some(match v {
            0 => Notification,
            1 => Create,
            2 => Delete,
            3 => Exists,
            4 => GetData,
            5 => SetData,
            6 => GetAcl,
            7 => SetAcl,
            8 => GetChildren,
            9 => Sync,
            11 => Ping,
            12 => GetChildren2,
            13 => Check,
            14 => Multi,
            15 => Create2,
            16 => Reconfig,
            17 => CheckWatches,
            18 => RemoveWatches,
            19 => CreateContainer,
            20 => DeleteContainer,
            21 => CreateTtl,
            22 => MultiRead,
            100 => Auth,
            101 => SetWatches,
            102 => Sasl,
            103 => GetEphemerals,
            104 => GetAllChildrenNumber,
            105 => SetWatches2,
            106 => AddWatch,
            107 => WhoAmI,
            -10 => CreateSession,
            -11 => CloseSession,
            -1 => Error,
            _ => return None,
        })
    }

    pub fn code(self) -> i32 {
        self as i32
    }

    /// ZooKeeper's four-letter name of the op, as `cons` shows it (lop=...); "NA" for the
    /// ops ZooKeeper has no name for.
    pub fn short_name(self) -> &'static str {
        use OpCode::*;
        match self {
            Create | Create2 | CreateContainer | CreateTtl => "CREA",
            Delete => "DELE",
            Exists => "EXIS",
            GetData => "GETD",
            SetData => "SETD",
            GetAcl => "GETA",
            SetAcl => "SETA",
            GetChildren | GetChildren2 => "GETC",
            Sync => "SYNC",
            Ping => "PING",
            Check => "CHEC",
            Multi => "MULT",
            Reconfig => "RECO",
            CheckWatches => "CHKW",
            RemoveWatches => "REMW",
            MultiRead => "MLTR",
            Auth => "AUTH",
            SetWatches | SetWatches2 => "SETW",
            GetEphemerals => "GETE",
            GetAllChildrenNumber => "GETN",
            AddWatch => "ADDW",
            WhoAmI => "WHOA",
            CloseSession => "CLOS",
            CreateSession => "SESS",
            Notification | DeleteContainer | Sasl | Error => "NA",
        }
    }

    /// create, create2, createContainer and createTTL: the opcodes of a CreateRequest (or
    /// CreateTTLRequest, for createTTL).
    pub fn is_create(self) -> bool {
        matches!(
            self,
            OpCode::Create | OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl
        )
    }
}

/// Reserved xids.
pub mod xid {
    pub const NOTIFICATION: i32 = -1;
    pub const PING: i32 = -2;
    pub const AUTH: i32 = -4;
    pub const SET_WATCHES: i32 = -8;
}

#[cfg(test)]
mod tests {
    use super::OpCode;

    /// ZooKeeper's `cons` names (Request.op2String's four-letter forms), by opcode.
    #[test]
    fn short_names_are_zookeepers() {
        let table = [
            (1, "CREA"),
            (2, "DELE"),
            (3, "EXIS"),
            (4, "GETD"),
            (5, "SETD"),
            (6, "GETA"),
            (7, "SETA"),
            (8, "GETC"),
            (9, "SYNC"),
            (11, "PING"),
            (12, "GETC"),
            (13, "CHEC"),
            (14, "MULT"),
            (15, "CREA"),
            (16, "RECO"),
            (17, "CHKW"),
            (18, "REMW"),
            (19, "CREA"),
            (20, "NA"),
            (21, "CREA"),
            (22, "MLTR"),
            (100, "AUTH"),
            (101, "SETW"),
            (103, "GETE"),
            (104, "GETN"),
            (105, "SETW"),
            (106, "ADDW"),
            (107, "WHOA"),
            (-11, "CLOS"),
            (-10, "SESS"),
            (0, "NA"),
        ];
        for (op, name) in table {
            let got = OpCode::from_i32(op).map_or("NA", OpCode::short_name);
            assert_eq!(got, name, "opcode {op}");
        }
    }
}
