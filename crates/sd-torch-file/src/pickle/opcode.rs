//! The pickle opcodes this machine knows, named as CPython's `Lib/pickletools.py` names them.

/// `PROTO n`: the protocol version (protocol 2+).
pub(super) const PROTO: u8 = 0x80;
/// `FRAME n`: a buffering hint (protocol 4+).
pub(super) const FRAME: u8 = 0x95;
/// `STOP`: the top of the stack is the result.
pub(super) const STOP: u8 = b'.';

/// `NONE`.
pub(super) const NONE: u8 = b'N';
/// `NEWTRUE`.
pub(super) const NEWTRUE: u8 = 0x88;
/// `NEWFALSE`.
pub(super) const NEWFALSE: u8 = 0x89;
/// `BININT1`: an unsigned byte.
pub(super) const BININT1: u8 = b'K';
/// `BININT2`: an unsigned 16-bit little-endian integer.
pub(super) const BININT2: u8 = b'M';
/// `BININT`: a signed 32-bit little-endian integer.
pub(super) const BININT: u8 = b'J';
/// `LONG1`: a two's-complement integer of up to 255 bytes.
pub(super) const LONG1: u8 = 0x8a;
/// `LONG4`: a two's-complement integer with a 4-byte length.
pub(super) const LONG4: u8 = 0x8b;
/// `INT`: a decimal line (`00` / `01` are `False` / `True`).
pub(super) const INT: u8 = b'I';
/// `LONG`: a decimal line with an optional `L` suffix.
pub(super) const LONG: u8 = b'L';
/// `BINFLOAT`: a big-endian f64.
pub(super) const BINFLOAT: u8 = b'G';
/// `FLOAT`: a decimal line.
pub(super) const FLOAT: u8 = b'F';

/// `BINUNICODE`: UTF-8 with a 4-byte length.
pub(super) const BINUNICODE: u8 = b'X';
/// `SHORT_BINUNICODE`: UTF-8 with a 1-byte length.
pub(super) const SHORT_BINUNICODE: u8 = 0x8c;
/// `BINUNICODE8`: UTF-8 with an 8-byte length.
pub(super) const BINUNICODE8: u8 = 0x8d;
/// `UNICODE`: a raw-unicode-escape line.
pub(super) const UNICODE: u8 = b'V';
/// `BINSTRING`: a Python 2 `str` with a signed 4-byte length.
pub(super) const BINSTRING: u8 = b'T';
/// `SHORT_BINSTRING`: a Python 2 `str` with a 1-byte length.
pub(super) const SHORT_BINSTRING: u8 = b'U';
/// `STRING`: a quoted Python 2 `str` literal line.
pub(super) const STRING: u8 = b'S';
/// `BINBYTES`: bytes with a 4-byte length.
pub(super) const BINBYTES: u8 = b'B';
/// `SHORT_BINBYTES`: bytes with a 1-byte length.
pub(super) const SHORT_BINBYTES: u8 = b'C';
/// `BINBYTES8`: bytes with an 8-byte length.
pub(super) const BINBYTES8: u8 = 0x8e;
/// `BYTEARRAY8`: a `bytearray` with an 8-byte length (read as bytes).
pub(super) const BYTEARRAY8: u8 = 0x96;
/// `NEXT_BUFFER`: an out-of-band buffer (protocol 5).
pub(super) const NEXT_BUFFER: u8 = 0x97;
/// `READONLY_BUFFER`: marks an out-of-band buffer read-only (protocol 5).
pub(super) const READONLY_BUFFER: u8 = 0x98;

/// `MARK`: remembers the stack height.
pub(super) const MARK: u8 = b'(';
/// `POP`.
pub(super) const POP: u8 = b'0';
/// `POP_MARK`: drops everything down to the last mark.
pub(super) const POP_MARK: u8 = b'1';
/// `DUP`.
pub(super) const DUP: u8 = b'2';
/// `PUT`: memo index as a decimal line.
pub(super) const PUT: u8 = b'p';
/// `BINPUT`: 1-byte memo index.
pub(super) const BINPUT: u8 = b'q';
/// `LONG_BINPUT`: 4-byte memo index.
pub(super) const LONG_BINPUT: u8 = b'r';
/// `MEMOIZE`: the next memo index.
pub(super) const MEMOIZE: u8 = 0x94;
/// `GET`: memo index as a decimal line.
pub(super) const GET: u8 = b'g';
/// `BINGET`: 1-byte memo index.
pub(super) const BINGET: u8 = b'h';
/// `LONG_BINGET`: 4-byte memo index.
pub(super) const LONG_BINGET: u8 = b'j';

/// `EMPTY_LIST`.
pub(super) const EMPTY_LIST: u8 = b']';
/// `LIST`: the items above the mark.
pub(super) const LIST: u8 = b'l';
/// `APPEND`.
pub(super) const APPEND: u8 = b'a';
/// `APPENDS`: the items above the mark.
pub(super) const APPENDS: u8 = b'e';
/// `EMPTY_TUPLE`.
pub(super) const EMPTY_TUPLE: u8 = b')';
/// `TUPLE`: the items above the mark.
pub(super) const TUPLE: u8 = b't';
/// `TUPLE1`: the top item.
pub(super) const TUPLE1: u8 = 0x85;
/// `TUPLE3`: the top three items (`TUPLE2`, 0x86, lies between).
pub(super) const TUPLE3: u8 = 0x87;
/// `EMPTY_DICT`.
pub(super) const EMPTY_DICT: u8 = b'}';
/// `DICT`: the key/value pairs above the mark.
pub(super) const DICT: u8 = b'd';
/// `SETITEM`.
pub(super) const SETITEM: u8 = b's';
/// `SETITEMS`: the key/value pairs above the mark.
pub(super) const SETITEMS: u8 = b'u';
/// `EMPTY_SET`.
pub(super) const EMPTY_SET: u8 = 0x8f;
/// `ADDITEMS`: the items above the mark, into the set below it.
pub(super) const ADDITEMS: u8 = 0x90;
/// `FROZENSET`: the items above the mark.
pub(super) const FROZENSET: u8 = 0x91;

/// `GLOBAL`: module and name as two lines.
pub(super) const GLOBAL: u8 = b'c';
/// `STACK_GLOBAL`: module and name from the stack.
pub(super) const STACK_GLOBAL: u8 = 0x93;
/// `INST`: a class as two lines, called on the items above the mark.
pub(super) const INST: u8 = b'i';
/// `OBJ`: the class and its arguments above the mark.
pub(super) const OBJ: u8 = b'o';
/// `REDUCE`: a callable applied to an argument tuple.
pub(super) const REDUCE: u8 = b'R';
/// `NEWOBJ`: `cls.__new__(cls, *args)`.
pub(super) const NEWOBJ: u8 = 0x81;
/// `NEWOBJ_EX`: `NEWOBJ` with keyword arguments.
pub(super) const NEWOBJ_EX: u8 = 0x92;
/// `BUILD`: sets an object's state.
pub(super) const BUILD: u8 = b'b';
/// `PERSID`: a persistent id as a text line.
pub(super) const PERSID: u8 = b'P';
/// `BINPERSID`: a persistent id from the stack (how torch names storages).
pub(super) const BINPERSID: u8 = b'Q';
/// `EXT1`: the extension registry, 1-byte code (`EXT2` 0x83, `EXT4` 0x84 follow).
pub(super) const EXT1: u8 = 0x82;
/// `EXT4`: the extension registry, 4-byte code.
pub(super) const EXT4: u8 = 0x84;
