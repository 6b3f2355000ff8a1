//! The value opcodes: numbers, strings and bytes, each read from its argument into one
//! [`Val`] (CPython `Lib/pickle.py`, `load_int` … `load_binbytes8`).

use super::opcode::*;
use super::{Result, Val, Vm};

impl Vm<'_> {
    /// The value a number, string or bytes opcode stands for.
    pub(super) fn value(&mut self, op: u8) -> Result<Val> {
        match op {
            NONE => Ok(Val::None),
            NEWTRUE => Ok(Val::Bool(true)),
            NEWFALSE => Ok(Val::Bool(false)),
            BININT1 | BININT2 | BININT | LONG1 | LONG4 | INT | LONG | BINFLOAT | FLOAT => {
                self.number(op)
            }
            BINUNICODE | SHORT_BINUNICODE | BINUNICODE8 | UNICODE => self.text(op),
            BINSTRING | SHORT_BINSTRING | STRING => self.python2_string(op),
            BINBYTES | SHORT_BINBYTES | BINBYTES8 | BYTEARRAY8 => self.binary(op),
            NEXT_BUFFER | READONLY_BUFFER => {
                Err(self.unsupported("out-of-band pickle buffers (protocol 5)"))
            }
            _ => Err(self.unknown_opcode(op)),
        }
    }

    /// Integers (binary, two's-complement and decimal) and floats.
    fn number(&mut self, op: u8) -> Result<Val> {
        Ok(match op {
            BININT1 => Val::Int(self.input.u8("BININT1")?.into()),
            BININT2 => Val::Int(u16::from_le_bytes(self.input.array("BININT2")?).into()),
            BININT => Val::Int(i32::from_le_bytes(self.input.array("BININT")?).into()),
            LONG1 => {
                let n = self.input.u8("LONG1")?;
                let b = self.input.bytes(n.into(), "LONG1")?;
                self.long(b)
            }
            LONG4 => {
                let n = i32::from_le_bytes(self.input.array("LONG4")?);
                let n = u64::try_from(n).map_err(|_| self.err("negative LONG4 length"))?;
                let b = self.input.bytes(n, "LONG4")?;
                self.long(b)
            }
            INT => {
                let line = self.input.line("INT")?;
                let s = self.text_str(line, "INT")?;
                match s.as_str() {
                    "00" => Val::Bool(false),
                    "01" => Val::Bool(true),
                    s => Val::Int(s.parse().map_err(|_| self.err(format!("bad INT `{s}`")))?),
                }
            }
            LONG => {
                let line = self.input.line("LONG")?;
                let s = self.text_str(line, "LONG")?;
                let digits = s.trim_end_matches('L');
                let v: i128 = digits
                    .parse()
                    .map_err(|_| self.err(format!("bad or oversized LONG `{s}`")))?;
                match i64::try_from(v) {
                    Ok(i) => Val::Int(i),
                    Err(_) => Val::BigInt(v.to_le_bytes().to_vec().into()),
                }
            }
            BINFLOAT => Val::Float(f64::from_be_bytes(self.input.array("BINFLOAT")?)),
            FLOAT => {
                let line = self.input.line("FLOAT")?;
                let s = self.text_str(line, "FLOAT")?;
                let v = s
                    .trim()
                    .parse()
                    .map_err(|_| self.err(format!("bad FLOAT `{s}`")))?;
                Val::Float(v)
            }
            _ => return Err(self.unknown_opcode(op)),
        })
    }

    /// Python 3 `str`: UTF-8 with a length, or a raw-unicode-escape line.
    fn text(&mut self, op: u8) -> Result<Val> {
        let bytes = match op {
            BINUNICODE => {
                let n = u32::from_le_bytes(self.input.array("BINUNICODE")?);
                self.input.bytes(n.into(), "BINUNICODE")?
            }
            SHORT_BINUNICODE => {
                let n = self.input.u8("SHORT_BINUNICODE")?;
                self.input.bytes(n.into(), "SHORT_BINUNICODE")?
            }
            BINUNICODE8 => {
                let n = u64::from_le_bytes(self.input.array("BINUNICODE8")?);
                self.input.bytes(n, "BINUNICODE8")?
            }
            UNICODE => {
                let line = self.input.line("UNICODE")?;
                let s = raw_unicode_unescape(&line).ok_or_else(|| self.err("bad UNICODE"))?;
                return Ok(Val::Str(s.into()));
            }
            _ => return Err(self.unknown_opcode(op)),
        };
        self.string(bytes)
    }

    /// Python 2 `str`: text when it is UTF-8, bytes otherwise.
    fn python2_string(&mut self, op: u8) -> Result<Val> {
        let b = match op {
            BINSTRING => {
                let n = i32::from_le_bytes(self.input.array("BINSTRING")?);
                let n = u64::try_from(n).map_err(|_| self.err("negative length"))?;
                self.input.bytes(n, "BINSTRING")?
            }
            SHORT_BINSTRING => {
                let n = self.input.u8("SHORT_BINSTRING")?;
                self.input.bytes(n.into(), "SHORT_BINSTRING")?
            }
            STRING => {
                let line = self.input.line("STRING")?;
                python_string_literal(&line).ok_or_else(|| self.err("bad STRING"))?
            }
            _ => return Err(self.unknown_opcode(op)),
        };
        Ok(match String::from_utf8(b) {
            Ok(s) => Val::Str(s.into()),
            Err(e) => Val::Bytes(e.into_bytes().into()),
        })
    }

    /// `bytes` (and `bytearray`, read as bytes).
    fn binary(&mut self, op: u8) -> Result<Val> {
        let b = match op {
            BINBYTES => {
                let n = u32::from_le_bytes(self.input.array("BINBYTES")?);
                self.input.bytes(n.into(), "BINBYTES")?
            }
            SHORT_BINBYTES => {
                let n = self.input.u8("SHORT_BINBYTES")?;
                self.input.bytes(n.into(), "SHORT_BINBYTES")?
            }
            BINBYTES8 | BYTEARRAY8 => {
                let n = u64::from_le_bytes(self.input.array("BINBYTES8")?);
                self.input.bytes(n, "BINBYTES8")?
            }
            _ => return Err(self.unknown_opcode(op)),
        };
        Ok(Val::Bytes(b.into()))
    }
}

/// Decodes pickle's protocol-0 `UNICODE` argument (raw-unicode-escape: `\uXXXX`,
/// `\UXXXXXXXX`, other bytes are Latin-1).
fn raw_unicode_unescape(line: &[u8]) -> Option<String> {
    let mut out = String::new();
    let mut i = 0;
    while i < line.len() {
        let digits = match (line[i], line.get(i + 1)) {
            (b'\\', Some(b'u')) => 4,
            (b'\\', Some(b'U')) => 8,
            _ => {
                out.push(char::from(line[i]));
                i += 1;
                continue;
            }
        };
        let hex = std::str::from_utf8(line.get(i + 2..i + 2 + digits)?).ok()?;
        out.push(char::from_u32(u32::from_str_radix(hex, 16).ok()?)?);
        i += 2 + digits;
    }
    Some(out)
}

/// Decodes pickle's protocol-0 `STRING` argument: a quoted Python 2 string literal with the
/// common backslash escapes.
fn python_string_literal(line: &[u8]) -> Option<Vec<u8>> {
    let q = *line.first()?;
    if !(q == b'\'' || q == b'"') || line.len() < 2 || *line.last()? != q {
        return None;
    }
    let body = &line[1..line.len() - 1];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i] != b'\\' {
            out.push(body[i]);
            i += 1;
            continue;
        }
        let e = *body.get(i + 1)?;
        i += 2;
        out.push(match e {
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'0' => 0,
            b'\\' | b'\'' | b'"' => e,
            b'x' => {
                let hex = std::str::from_utf8(body.get(i..i + 2)?).ok()?;
                i += 2;
                u8::from_str_radix(hex, 16).ok()?
            }
            _ => return None,
        });
    }
    Some(out)
}
