//! The opcode loop: read an opcode, hand it to the step of its family, until `STOP`. The
//! families follow CPython's `Lib/pickle.py` (`_Unpickler` dispatch table; argument layouts
//! from `Lib/pickletools.py`):
//!
//! | family | opcodes | where |
//! |---|---|---|
//! | framing | `PROTO`, `FRAME`, `STOP` | [`Vm::run`], [`Vm::framing`] |
//! | values | numbers, strings, bytes | `values.rs` ([`Vm::value`]) |
//! | stack and memo | `MARK`, `POP`, `DUP`, `PUT`/`GET` and kin | `containers.rs` ([`Vm::stack_or_memo`]) |
//! | containers | lists, tuples, dicts, sets | `containers.rs` ([`Vm::container`]) |
//! | globals and calls | `GLOBAL`, `REDUCE`, `NEWOBJ`, `BUILD`, persistent ids | `reduce.rs` ([`Vm::global_or_call`]) |

use super::opcode::*;
use super::{Result, TorchFileError, Val, Vm};

/// What one opcode did.
enum Step {
    /// Go on with the next opcode.
    Next,
    /// `STOP`: the stream's value.
    Stop(Val),
}

impl Vm<'_> {
    /// Runs the stream to its `STOP` and returns the value it built.
    pub(super) fn run(&mut self) -> Result<Val> {
        loop {
            self.op_pos = self.input.pos();
            let op = self.input.u8("an opcode")?;
            if let Step::Stop(root) = self.step(op)? {
                return Ok(root);
            }
        }
    }

    /// Executes one opcode through the step of its family.
    fn step(&mut self, op: u8) -> Result<Step> {
        match op {
            STOP => return Ok(Step::Stop(self.pop()?)),
            PROTO | FRAME => self.framing(op)?,
            NONE | NEWTRUE | NEWFALSE | BININT1 | BININT2 | BININT | LONG1 | LONG4 | INT | LONG
            | BINFLOAT | FLOAT | BINUNICODE | SHORT_BINUNICODE | BINUNICODE8 | UNICODE
            | BINSTRING | SHORT_BINSTRING | STRING | BINBYTES | SHORT_BINBYTES | BINBYTES8
            | BYTEARRAY8 | NEXT_BUFFER | READONLY_BUFFER => {
                let v = self.value(op)?;
                self.push(v);
            }
            MARK | POP | POP_MARK | DUP | PUT | BINPUT | LONG_BINPUT | MEMOIZE | GET | BINGET
            | LONG_BINGET => self.stack_or_memo(op)?,
            EMPTY_LIST
            | LIST
            | APPEND
            | APPENDS
            | EMPTY_TUPLE
            | TUPLE
            | TUPLE1..=TUPLE3
            | EMPTY_DICT
            | DICT
            | SETITEM
            | SETITEMS
            | EMPTY_SET
            | ADDITEMS
            | FROZENSET => self.container(op)?,
            GLOBAL
            | STACK_GLOBAL
            | INST
            | OBJ
            | REDUCE
            | NEWOBJ
            | NEWOBJ_EX
            | BUILD
            | PERSID
            | BINPERSID
            | EXT1..=EXT4 => self.global_or_call(op)?,
            _ => return Err(self.unknown_opcode(op)),
        }
        Ok(Step::Next)
    }

    /// `PROTO` and `FRAME`: checked and skipped, they build nothing.
    fn framing(&mut self, op: u8) -> Result<()> {
        match op {
            // Any protocol up to 5 is fine; the opcodes decide.
            PROTO => {
                let p = self.input.u8("PROTO")?;
                if p > 5 {
                    return Err(self.unsupported(format!("pickle protocol {p}")));
                }
            }
            // Framing is only a buffering hint.
            FRAME => {
                self.input.array::<8>("FRAME")?;
            }
            _ => return Err(self.unknown_opcode(op)),
        }
        Ok(())
    }

    /// The error for an opcode no step knows.
    pub(super) fn unknown_opcode(&self, op: u8) -> TorchFileError {
        self.err(format!("unknown opcode 0x{op:02x}"))
    }
}
