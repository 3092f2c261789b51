#!/usr/bin/env python3
"""Writes the `.npy` header audit corpus: every way a header (and the bytes around it) can be
malformed or unusual, each checked against NumPy's own reader.

    python scripts/make_npy_audit.py fixtures/npy/audit

Each case is built byte by byte (never with np.save), then loaded with `numpy.load(path)` (default
arguments: allow_pickle=False, mmap_mode=None), and `expected.json` records what NumPy did:

    "numpy":   "accept" | "refuse"
    "why":     what the case is about, and the line of numpy/lib/_format_impl.py that decides it
    "dtype", "shape"          when accepted (str(array.dtype), list(array.shape))
    "error"                   when refused: "ExceptionType: first line of the message"
    "warning"                 when NumPy accepted with a warning
    "relu":    "accept" | "refuse"  what `relu stats` must do: NumPy's verdict, except that a
               NumPy-accepted array of a dtype relu does not process (bool, complex, strings,
               structured, datetime, longdouble) must be refused ("unsupported": true)
    "inspect": "any" (optional): `relu inspect` reads the header only, so it may show a valid
               header of an unsupported dtype, and cannot see data that is too short
               ("stage": "data"); it must still never panic.

The output is deterministic: the same bytes and the same JSON on every run (for one NumPy).
"""
import io
import json
import os
import pickle
import re
import struct
import sys
import warnings
import zipfile

import numpy as np

MAGIC = b"\x93NUMPY"
LEN_BYTES = {1: 2, 2: 4, 3: 4}

CASES = []  # (name, bytes, why, extra)


def case(name, data, why, **extra):
    assert name.endswith(".npy") and all(n != name for n, *_ in CASES), name
    CASES.append((name, bytes(data), why, extra))


def dict_text(descr="'<f4'", fortran="False", shape="(3,)"):
    return "{'descr': %s, 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape)


def npy(text, data=b"", version=(1, 0), pad=True, hlen=None, encoding=None):
    """Magic, version, length field, header `text` (padded numpy-style to 64 bytes with spaces
    and a final newline when `pad`), then `data`. `hlen` overrides the length field."""
    if encoding is None:
        encoding = "utf8" if version[0] == 3 else "latin1"
    h = text.encode(encoding) if isinstance(text, str) else bytes(text)
    nlen = LEN_BYTES.get(version[0], 2)
    if pad:
        total = -(-(8 + nlen + len(h) + 1) // 64) * 64
        h = h + b" " * (total - 8 - nlen - len(h) - 1) + b"\n"
    n = len(h) if hlen is None else hlen
    length = struct.pack("<I", n)[:nlen]
    return MAGIC + bytes(version) + length + h + bytes(data)


def f4(*xs, order="<"):
    return np.array(xs, dtype=order + "f4").tobytes()


DATA3 = f4(1.5, -2.0, 3.25)  # three float32: what dict_text()'s shape (3,) needs


def std(**kw):
    """A well-formed header with `kw` replacing descr/fortran/shape text, and 3 float32."""
    data = kw.pop("data", DATA3)
    version = kw.pop("version", (1, 0))
    return npy(dict_text(**kw), data, version=version)


# ---------------------------------------------------------------------------------------------
# numpy.load dispatch on the first bytes (numpy/lib/_npyio_impl.py, load: `magic = fid.read(N)`)
# and read_magic (_format_impl.py `def read_magic`: `_read_bytes(fp, MAGIC_LEN, "magic string")`).

case("magic_empty_file.npy", b"", "load: empty file -> EOFError('No data left in file')")
case("magic_3_bytes.npy", MAGIC[:3], "load: 3 bytes, not the magic prefix -> pickle branch refuses")
case("magic_prefix_only.npy", MAGIC, "read_magic: 6 of MAGIC_LEN=8 bytes -> _read_bytes EOF")
case("magic_prefix_7_bytes.npy", MAGIC + b"\x01", "read_magic: 7 of 8 bytes -> _read_bytes EOF")
case("magic_lowercase.npy", b"\x93numpy" + std()[6:], "load: magic != MAGIC_PREFIX -> pickle branch refuses")
case("magic_no_x93.npy", b" NUMPY" + std()[6:], "load: first byte not \\x93 -> pickle branch refuses")
case("magic_pickle.npy", pickle.dumps([1.0, 2.0], protocol=2), "load: a pickle, allow_pickle=False refuses")
case("magic_zip_garbage.npy", b"PK\x03\x04" + b"\x00" * 40, "load: ZIP prefix -> NpzFile -> BadZipFile")


def npz_bytes(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, payload in members:
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), payload)
    return buf.getvalue()


case(
    "magic_zip_npz.npy",
    npz_bytes([("x.npy", std())]),
    "load: ZIP prefix -> returns an NpzFile (a dict of arrays), not an array",
    dispatch="npz",
)
case("magic_zip_empty.npy", npz_bytes([]), "load: empty ZIP (PK\\x05\\x06 prefix) -> an empty NpzFile", dispatch="npz")

# ---------------------------------------------------------------------------------------------
# _check_version: only (1,0), (2,0), (3,0).

for v in [(1, 0), (2, 0), (3, 0)]:
    case(f"version_{v[0]}_{v[1]}.npy", std(version=v), f"_check_version: {v} is valid")
for v in [(0, 0), (0, 1), (1, 1), (2, 1), (3, 1), (4, 0), (255, 255)]:
    case(f"version_{v[0]}_{v[1]}.npy", std(version=v), f"_check_version: {v} -> ValueError")

# ---------------------------------------------------------------------------------------------
# _read_array_header: the length field and the header bytes (`_read_bytes(fp, ..., "array
# header length")`, `_read_bytes(fp, header_length, "array header")`).

case("hlen_v1_1_byte.npy", MAGIC + b"\x01\x00\x76", "length field: 1 of 2 bytes -> EOF")
case("hlen_v2_3_bytes.npy", MAGIC + b"\x02\x00\x76\x00\x00", "length field: 3 of 4 bytes -> EOF")
case("hlen_v3_missing.npy", MAGIC + b"\x03\x00", "length field: absent -> EOF")
case("hlen_past_eof_v1.npy", npy(dict_text(), b"", hlen=300), "length 300 past the end of the file -> EOF")
case("hlen_past_eof_v2_max.npy", npy(dict_text(), b"", version=(2, 0), hlen=0xFFFFFFFF), "v2 length 2**32-1 -> EOF")
case("hlen_zero.npy", npy("", b"", pad=False), "length 0: literal_eval('') -> SyntaxError -> 'Cannot parse header'")
_full = dict_text() + " " * 9 + "\n"
case(
    "hlen_cuts_dict.npy",
    npy(_full, DATA3, pad=False, hlen=len(dict_text()) - 1),
    "length ends before the closing '}' -> SyntaxError",
)
case(
    "hlen_cuts_padding.npy",
    npy(_full, DATA3, pad=False, hlen=len(dict_text())),
    "length excludes the padding: header ends at '}', the padding becomes data (longer data is fine)",
)
case(
    "hlen_into_data_nul.npy",
    npy(_full, b"\x00" * 4 + DATA3, pad=False, hlen=len(_full) + 4),
    "length reaches 4 NUL data bytes -> literal_eval: null bytes",
)
case(
    "hlen_into_data_spaces.npy",
    npy(_full, b"    " + DATA3, pad=False, hlen=len(_full) + 4),
    "length reaches 4 data bytes that are spaces -> still a valid literal",
)

# max_header_size (_MAX_HEADER_SIZE = 10000): `if len(header) > max_header_size`, counted in
# decoded characters, after decoding.


def sized(n_chars, version=(1, 0), filler=None):
    """A valid header of exactly `n_chars` characters (after decoding)."""
    t = dict_text()
    if filler is None:
        body = t + " " * (n_chars - len(t) - 1) + "\n"
    else:  # a duplicate 'descr' key holding the filler, then the real one
        pre = "{'descr': '"
        rest = "', " + t[1:]
        k = n_chars - len(pre) - len(rest) - 1
        body = pre + filler * k + rest + "\n"
    assert len(body) == n_chars
    return npy(body, DATA3, version=version, pad=False)


case("maxhdr_10000_v1.npy", sized(10000), "header of 10000 chars: at max_header_size -> accepted")
case("maxhdr_10001_v1.npy", sized(10001), "header of 10001 chars > max_header_size -> ValueError")
case("maxhdr_10001_v2.npy", sized(10001, (2, 0)), "v2, 10001 chars -> ValueError")
case(
    "maxhdr_v3_10000_chars_19k_bytes.npy",
    sized(10000, (3, 0), filler="\u00e9"),
    "v3: 10000 characters (the limit counts characters) in ~19900 UTF-8 bytes -> accepted",
)
case("maxhdr_v3_10001_chars.npy", sized(10001, (3, 0), filler="\u00e9"), "v3: 10001 characters -> ValueError")

# Decoding: latin1 for 1.0 and 2.0, utf8 for 3.0 (`_header_size_info`, `header.decode(encoding)`).

_dup = "{'descr': '%s', " + dict_text()[1:]
case("enc_v1_latin1_byte.npy", npy(_dup % "\u00e9", DATA3), "v1: byte 0xE9 in a (overridden) string, latin1 -> accepted")
case(
    "enc_v1_utf8_bytes.npy",
    npy((_dup % "\u00e9").encode("utf8"), DATA3),
    "v1: UTF-8 bytes read as latin1 'Ã©' -> still a valid literal",
)
case("enc_v3_utf8.npy", npy(_dup % "\u00e9\u4e2d", DATA3, version=(3, 0)), "v3: UTF-8 text in a string -> accepted")
case(
    "enc_v3_invalid_utf8.npy",
    npy((_dup % "\u00e9").encode("latin1"), DATA3, version=(3, 0)),
    "v3: byte 0xE9 alone is not UTF-8 -> UnicodeDecodeError",
)
case(
    "enc_v3_bom.npy",
    npy("\ufeff" + dict_text(), DATA3, version=(3, 0)),
    "v3: a UTF-8 byte-order mark before the dict -> literal_eval refuses U+FEFF",
)
case(
    "enc_v1_nbsp.npy",
    npy(dict_text().replace(", 'shape'", ",\xa0'shape'"), DATA3),
    "v1: a no-break space (0xA0) between items is not Python whitespace -> SyntaxError",
)

# ---------------------------------------------------------------------------------------------
# ast.literal_eval(header), then `if not isinstance(d, dict)`.

H = dict_text()
case("lit_whitespace_only.npy", npy("   ", b""), "only padding: SyntaxError -> 'Cannot parse header'")
case("lit_unclosed.npy", npy(H[:-1], DATA3), "no closing '}' -> SyntaxError")
case("lit_list.npy", npy("['<f4', False, (3,)]", DATA3), "a list -> 'Header is not a dictionary'")
case("lit_tuple.npy", npy("('<f4', False, (3,))", DATA3), "a tuple -> 'Header is not a dictionary'")
case("lit_set.npy", npy("{'descr', 'fortran_order', 'shape'}", DATA3), "a set -> 'Header is not a dictionary'")
case("lit_string.npy", npy(repr(H), DATA3), "the dict inside a string -> 'Header is not a dictionary'")
case("lit_int.npy", npy("3", DATA3), "an int -> 'Header is not a dictionary'")
case("lit_dict_call.npy", npy("dict(descr='<f4', fortran_order=False, shape=(3,))", DATA3), "a call -> malformed node")
case("lit_false_lowercase.npy", npy(dict_text(fortran="false"), DATA3), "'false' is a name -> malformed node")
case("lit_trailing_garbage.npy", npy(H + " x", DATA3), "text after the dict -> SyntaxError")
case("lit_semicolon.npy", npy(H + ";", DATA3), "';' after the dict -> SyntaxError")
case("lit_nul_padding.npy", npy(H + "\x00" * 10 + "\n", DATA3, pad=False), "NUL padding -> null bytes refused")
case("lit_parenthesized.npy", npy("(" + H + ")", DATA3), "the dict in parentheses -> the dict")
case("lit_no_newline.npy", npy(H, DATA3, pad=False), "no padding, no final newline -> accepted (never checked)")
case("lit_unaligned.npy", npy(H + "   \n", DATA3, pad=False), "data not 64-byte aligned -> accepted (never checked)")
case("lit_leading_spaces.npy", npy("   " + H, DATA3), "leading spaces -> literal_eval strips them")
case("lit_leading_tab.npy", npy("\t" + H, DATA3), "leading tab -> literal_eval strips it")
case("lit_leading_newline.npy", npy("\n" + H, DATA3), "leading newline -> accepted")
case("lit_leading_formfeed.npy", npy("\x0c" + H, DATA3), "leading form feed -> accepted")
case("lit_crlf.npy", npy(H + "\r\n", DATA3, pad=False), "ends in CR LF -> accepted")
case("lit_cr_inside.npy", npy(H.replace(", ", ",\r"), DATA3), "items separated by CR -> accepted")
case(
    "lit_multiline.npy",
    npy("{\n    'descr': '<f4',\n    'fortran_order': False,\n    'shape': (3,),\n}", DATA3),
    "pretty-printed over lines -> accepted",
)
case("lit_tabs.npy", npy(H.replace(" ", "\t"), DATA3), "tabs for spaces -> accepted")
case("lit_compact.npy", npy("{'descr':'<f4','fortran_order':False,'shape':(3,)}", DATA3), "no spaces -> accepted")
case("lit_no_trailing_comma.npy", npy(H.replace(", }", "}"), DATA3), "no trailing comma -> accepted")
case("lit_double_comma.npy", npy(H.replace(", }", ",, }"), DATA3), "',,' -> SyntaxError")
case("lit_double_quotes.npy", npy(H.replace("'", '"'), DATA3), "double-quoted strings -> accepted")
case("lit_comment_end.npy", npy(H + "  # saved by hand", DATA3), "a comment after the dict -> accepted")
case(
    "lit_comment_inside.npy",
    npy("{'descr': '<f4',  # float\n 'fortran_order': False, 'shape': (3,)}", DATA3),
    "a comment inside the dict -> accepted",
)
case(
    "lit_backslash_continuation.npy",
    npy("{'descr': '<f4', \\\n'fortran_order': False, 'shape': (3,)}", DATA3),
    "a backslash line continuation -> accepted",
)
case("lit_u_prefix.npy", npy(H.replace("'", "u'", 1).replace("'<f4'", "u'<f4'"), DATA3), "u'' strings -> accepted")
case("lit_r_prefix.npy", npy(dict_text(descr="r'<f4'"), DATA3), "r'' string -> accepted")
case("lit_b_prefix_keys.npy", npy(H.replace("'descr'", "b'descr'"), DATA3), "b'descr' is not 'descr' -> wrong keys")
case("lit_f_prefix.npy", npy(dict_text(descr="f'<f4'"), DATA3), "f-string -> malformed node")
case("lit_implicit_concat.npy", npy(H.replace("'descr'", "'des' 'cr'"), DATA3), "'des' 'cr' -> 'descr' -> accepted")
case("lit_triple_quotes.npy", npy(dict_text(descr="'''<f4'''"), DATA3), "'''<f4''' -> accepted")
case("lit_escape_hex.npy", npy(dict_text(descr=r"'\x3cf4'"), DATA3), r"'\x3cf4' is '<f4' -> accepted")
case("lit_escape_unicode.npy", npy(H.replace("'descr'", r"'d\u0065scr'"), DATA3), r"'d\u0065scr' -> accepted")
case("lit_escape_octal.npy", npy(dict_text(descr=r"'\074f4'"), DATA3), r"'\074f4' is '<f4' -> accepted")
case("lit_escape_named.npy", npy(dict_text(descr=r"'\N{LESS-THAN SIGN}f\N{digit four}'"), DATA3), r"'\N{LESS-THAN SIGN}f\N{digit four}' is '<f4' (names are case-insensitive) -> accepted")
case("lit_escape_named_key.npy", npy(H.replace("'descr'", r"'\N{LATIN SMALL LETTER D}escr'"), DATA3), r"'\N{LATIN SMALL LETTER D}escr' -> accepted")
case("lit_escape_named_alias.npy", npy(dict_text(descr=r"'<f4\N{SP}'"), DATA3), r"'\N{SP}' is a space (Unicode alias) -> '<f4 ' is not a dtype")
case("lit_escape_named_nonascii.npy", npy(dict_text(descr=r"'<f\N{FULLWIDTH DIGIT FOUR}'"), DATA3), "a real name, not ASCII -> not a dtype")
case("lit_escape_named_unknown.npy", npy(dict_text(descr=r"'<f\N{NO SUCH NAME}'"), DATA3), r"unknown \N name -> SyntaxError")
case("lit_escape_named_unclosed.npy", npy(dict_text(descr=r"'<f\N{DIGIT FOUR'"), DATA3), r"\N{ without } -> SyntaxError")
case("lit_escape_named_space.npy", npy(dict_text(descr=r"'<f\N{ DIGIT FOUR}'"), DATA3), r"\N{ NAME} with a space -> SyntaxError")
case("lit_escape_named_bytes.npy", npy(dict_text(descr=r"b'<f\N{DIGIT FOUR}'"), DATA3), r"b'' keeps \N as it is -> b'<f\\N{DIGIT FOUR}' is not a dtype")
case(
    "lit_string_continuation.npy",
    npy(H.replace("'descr'", "'des\\\ncr'"), DATA3),
    "backslash-newline inside a string -> 'descr' -> accepted",
)
case("lit_newline_in_string.npy", npy(H.replace("'descr'", "'des\ncr'"), DATA3), "raw newline in a string -> SyntaxError")
case("lit_unterminated_string.npy", npy("{'descr': '<f4", DATA3), "unterminated string -> SyntaxError")
case("lit_parens_100.npy", npy(dict_text(fortran="(" * 100 + "False" + ")" * 100), DATA3), "100 nested parentheses")
case("lit_parens_300.npy", npy(dict_text(fortran="(" * 300 + "False" + ")" * 300), DATA3), "300 nested parentheses")

case(
    "lit_indented_tail_v1.npy",
    npy(H + "\n   ", DATA3, pad=False),
    "v1: spaces after the final newline -> SyntaxError, _filter_header's untokenize repairs it -> accepted with UserWarning",
)
case(
    "lit_indented_tail_v3.npy",
    npy(H + "\n   ", DATA3, pad=False, version=(3, 0)),
    "v3: spaces after the final newline -> SyntaxError, no filtering for (3, 0) -> refused",
)
case(
    "lit_indented_tail_v3_tab.npy",
    npy(H + "\n\t", DATA3, pad=False, version=(3, 0)),
    "v3: a tab after the final newline -> SyntaxError -> refused",
)
case(
    "descr_subarray_empty_array.npy",
    std(descr="('<f4', (2,))", shape="(0,)", data=b""),
    "('<f4', (2,)) with shape (0,): size 0 == count 0 -> float32 (0,)",
)

# Python 2 'L' longs: `except SyntaxError: if version <= (2, 0): header = _filter_header(header)`.

case("py2_long_v1.npy", std(shape="(3L,)"), "v1 '3L': _filter_header drops the L -> accepted with UserWarning")
case("py2_long_v2.npy", std(shape="(3L,)", version=(2, 0)), "v2 '3L' -> accepted with UserWarning")
case("py2_long_v3.npy", std(shape="(3L,)", version=(3, 0)), "v3 '3L': no filtering for (3, 0) -> ValueError")
case("py2_long_space_v1.npy", std(shape="(3 L,)"), "v1 '3 L': NUMBER then NAME 'L' -> filtered -> accepted")
case("py2_long_lowercase_v1.npy", std(shape="(3l,)"), "v1 '3l': only 'L' is filtered -> ValueError")
case("py2_long_2d_v1.npy", std(shape="(1L, 3L)"), "v1 '(1L, 3L)' -> accepted with UserWarning")

# ---------------------------------------------------------------------------------------------
# `if EXPECTED_KEYS != d.keys()`.

case("keys_empty_dict.npy", npy("{}", DATA3), "{} -> wrong keys")
case("keys_missing_descr.npy", npy("{'fortran_order': False, 'shape': (3,)}", DATA3), "no 'descr' -> wrong keys")
case("keys_missing_fortran.npy", npy("{'descr': '<f4', 'shape': (3,)}", DATA3), "no 'fortran_order' -> wrong keys")
case("keys_missing_shape.npy", npy("{'descr': '<f4', 'fortran_order': False}", DATA3), "no 'shape' -> wrong keys")
case("keys_extra.npy", npy(H.replace("{", "{'extra': 1, "), DATA3), "an extra key -> wrong keys")
case("keys_extra_int.npy", npy(H.replace("{", "{1: 1, "), DATA3), "an extra int key -> wrong keys")
case("keys_capitalized.npy", npy(H.replace("'descr'", "'Descr'"), DATA3), "'Descr' -> wrong keys")
case("keys_space.npy", npy(H.replace("'descr'", "' descr'"), DATA3), "' descr' -> wrong keys")
case(
    "keys_duplicate_descr.npy",
    npy("{'descr': '<i4', " + H[1:].replace("'<f4'", "'<f8'"), f4(1, 2, 3, 4, 5, 6)),
    "'descr' twice: the last ('<f8') wins -> accepted",
)
case(
    "keys_duplicate_first_invalid.npy",
    npy("{'shape': [3], " + H[1:], DATA3),
    "'shape' twice, first invalid: the last wins -> accepted",
)
case(
    "keys_duplicate_last_invalid.npy",
    npy(H[:-1] + "'shape': [3]}", DATA3),
    "'shape' twice, last invalid -> 'shape is not valid'",
)

# ---------------------------------------------------------------------------------------------
# `if not isinstance(d['shape'], tuple) or not all(isinstance(x, int) ...)`, then count =
# numpy.multiply.reduce(shape, dtype=numpy.int64), fromfile(count=count), reshape(shape).

for name, shape, why in [
    ("shape_list", "[3]", "a list -> 'shape is not valid'"),
    ("shape_int", "3", "an int -> 'shape is not valid'"),
    ("shape_paren_int", "(3)", "(3) is an int -> 'shape is not valid'"),
    ("shape_none", "None", "None -> 'shape is not valid'"),
    ("shape_str", "'3'", "a string -> 'shape is not valid'"),
    ("shape_float", "(3.0,)", "a float -> 'shape is not valid'"),
    ("shape_complex", "(3j,)", "a complex -> 'shape is not valid'"),
    ("shape_nested", "((3,),)", "a tuple in the tuple -> 'shape is not valid'"),
    ("shape_none_dim", "(None,)", "None dim -> 'shape is not valid'"),
    ("shape_trailing_comma_2d", "(1, 3,)", "(1, 3,) -> accepted"),
    ("shape_parens_dim", "((3),)", "((3),) is (3,) -> accepted"),
    ("shape_plus", "(+3,)", "+3 -> accepted"),
    ("shape_minus_space", "(- -3,)", "'- -3': unary minus of a unary minus -> malformed node"),
    ("shape_double_minus", "(--3,)", "'--3' -> malformed node (literal_eval allows one sign)"),
    ("shape_plus_minus", "(+-3,)", "'+-3' -> malformed node"),
    ("shape_hex", "(0x3,)", "0x3 -> 3, accepted"),
    ("shape_octal", "(0o3,)", "0o3 -> 3, accepted"),
    ("shape_binary", "(0b11,)", "0b11 -> 3, accepted"),
    ("shape_underscore", "(0_3,)", "'0_3': leading zero -> SyntaxError"),
    ("shape_underscore_trailing", "(3_,)", "'3_' -> SyntaxError"),
    ("shape_underscore_double", "(1__2,)", "'1__2' -> SyntaxError"),
    ("shape_leading_zero", "(03,)", "'03' -> SyntaxError (also after _filter_header)"),
    ("shape_true", "(True,)", "True is an int (isinstance) -> passes the check; fromfile/reshape decide"),
    ("shape_true_2d", "(True, 3)", "(True, 3): bool dims pass the header check; reshape decides"),
    ("shape_false_2d", "(False, 3)", "(False, 3): bool dims pass the header check; reshape decides"),
    ("shape_negative", "(-3,)", "-3: count -3, fromfile reads all, size != count -> ValueError"),
    ("shape_neg_pair", "(-1, -3)", "(-1, -3): count 3 -> reshape refuses"),
    ("shape_minus_zero", "(-0, 3)", "-0 is 0 -> empty array, accepted"),
]:
    case(name + ".npy", std(shape=shape), why)

case("shape_true_1elem.npy", std(shape="(True,)", data=f4(7)), "(True,) with one element of data")
case("shape_neg_zero.npy", std(shape="(-1, 0)", data=b""), "(-1, 0): count 0 -> reshape refuses")
case("shape_underscore_ok.npy", std(shape="(1_0,)", data=b""), "'1_0' is 10 -> refused for the data", stage="data")
case("shape_00.npy", std(shape="(00,)", data=b""), "'00' is a valid 0 -> accepted")
case("shape_2pow64.npy", std(shape="(2**64,)"), "'2**64' is an expression -> malformed node")
case("shape_over_int64.npy", std(shape="(18446744073709551616,)"), "2**64 -> OverflowError in multiply.reduce")
case("shape_2pow63.npy", std(shape="(9223372036854775808,)"), "2**63 does not fit int64")
case("shape_product_wraps_0.npy", std(shape="(4294967296, 4294967296)"), "2**32 * 2**32 wraps to 0 -> reshape refuses")
case(
    "shape_product_wraps_1.npy",
    std(shape="(7, %d)" % pow(7, -1, 2**64), data=f4(1)),
    "7 * 7**-1 mod 2**64 wraps to 1 -> reads 1 element -> reshape refuses",
)
# numpy's ndarray checks: each dim <= 2**63-1, and the product of the non-zero dims times the
# item size <= 2**63-1, even when another dim is 0 (the zero dim comes last so that relu stats'
# unit axis, the last, has no units to count).
for name, d, shape, why in [
    ("shape_2pow62_x_zero_u1", "'|u1'", "(4611686018427387904, 0)", "(2**62, 0) u1: 2**62 bytes -> accepted, empty"),
    ("shape_2pow59_x_zero_f8", "'<f8'", "(576460752303423488, 0)", "(2**59, 0) f8: 2**62 bytes -> accepted, empty"),
    ("shape_2pow60_x_zero_f8", "'<f8'", "(1152921504606846976, 0)", "(2**60, 0) f8: 2**63 bytes -> 'array is too big'"),
    ("shape_2pow61_x_zero_f8", "'<f8'", "(2305843009213693952, 0)", "(2**61, 0) f8 -> 'array is too big'"),
    ("shape_2pow63_x_zero_u1", "'|u1'", "(9223372036854775808, 0)", "(2**63, 0) u1 -> 'Maximum allowed dimension exceeded'"),
]:
    case(name + ".npy", std(descr=d, shape=shape, data=b""), why)
case(
    "shape_2pow31_no_data.npy",
    std(descr="'|u1'", shape="(2147483648,)", data=b"\x01" * 3),
    "2**31 u1, 3 bytes -> 'Failed to read all data'",
    stage="data",
)
case("shape_64_dims.npy", std(shape="(" + "1, " * 63 + "3)"), "64 dimensions (NumPy's maximum) -> accepted")
case("shape_65_dims.npy", std(shape="(" + "1, " * 64 + "3)"), "65 dimensions -> reshape refuses")
case("shape_0d.npy", std(shape="()", data=f4(2.5)), "() -> 0-d array of one element")
case("shape_0d_no_data.npy", std(shape="()", data=b""), "() with no data -> 'Failed to read all data'", stage="data")
case("shape_0d_extra_data.npy", std(shape="()", data=DATA3), "() with 3 elements of data -> accepted")
case("shape_empty_1d.npy", std(shape="(0,)", data=b""), "(0,) -> empty array")
case("shape_empty_1d_extra_data.npy", std(shape="(0,)", data=DATA3), "(0,) with data after -> accepted")
case("shape_0x5.npy", std(shape="(0, 5)", data=b""), "(0, 5) -> accepted")
case("shape_5x0.npy", std(shape="(5, 0)", data=b""), "(5, 0) -> accepted")

# ---------------------------------------------------------------------------------------------
# `if not isinstance(d['fortran_order'], bool)`.

for name, fo, why in [
    ("fortran_int_0", "0", "0 -> 'fortran_order is not a valid bool'"),
    ("fortran_int_1", "1", "1 -> not a bool"),
    ("fortran_none", "None", "None -> not a bool"),
    ("fortran_str", "'False'", "'False' -> not a bool"),
    ("fortran_tuple", "(False,)", "(False,) -> not a bool"),
    ("fortran_paren", "(False)", "(False) is False -> accepted"),
    ("fortran_true_1d", "True", "True, 1-D -> accepted"),
]:
    case(name + ".npy", std(fortran=fo), why)
case("fortran_true_2d.npy", std(fortran="True", shape="(3, 2)", data=f4(1, 2, 3, 4, 5, 6)), "True, 2-D -> accepted")
case("fortran_true_0d.npy", std(fortran="True", shape="()", data=f4(1)), "True, 0-d -> accepted")

# ---------------------------------------------------------------------------------------------
# descr_to_dtype(d['descr']): a str -> numpy.dtype(str); a tuple -> (descr_to_dtype(d[0]), d[1]);
# else a list of fields; `except TypeError` -> 'descr is not a valid dtype descriptor'. Then
# `if dtype.hasobject: ... raise ValueError("Object arrays cannot be loaded ...")`.


def with_descr(name, descr_text, itemsize, why, n=3, **extra):
    data = bytes(range(1, 1 + itemsize * n)) if itemsize else b""
    case(name + ".npy", std(descr=descr_text, data=data), why, **extra)


for code, size in [("f", 2), ("f", 4), ("f", 8), ("i", 1), ("i", 2), ("i", 4), ("i", 8), ("u", 1), ("u", 2), ("u", 4), ("u", 8)]:
    for bo, tag in [("<", "lt"), (">", "gt"), ("=", "eq"), ("|", "pipe"), ("", "bare")]:
        with_descr(f"descr_{tag}_{code}{size}", f"'{bo}{code}{size}'", size, f"'{bo}{code}{size}' -> numpy.dtype")

# Every type name NumPy knows (numpy.sctypeDict) for the types relu processes, and the one-letter
# codes, each as the whole descr.
_SUPPORTED = {np.dtype(c) for c in ["f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8"]}
_names = sorted(k for k, v in np.sctypeDict.items() if isinstance(k, str) and np.dtype(v) in _SUPPORTED)
for k in _names + ["bool", "bool_"]:
    with_descr(f"descr_name_{k}", repr(k), np.dtype(k).itemsize, f"{k!r} -> numpy.dtype({k!r})")
for k in "efdbhilqpBHILQP?":
    tag = {"?": "question"}.get(k, ("upper_" if k.isupper() else "") + k)
    with_descr(f"descr_char_{tag}", repr(k), np.dtype(k).itemsize, f"{k!r} -> numpy.dtype({k!r})")
for k in ["<f", ">d", "=e", "|b", "<l", ">H", "<?"]:
    tag = k.replace("?", "question").replace("<", "lt_").replace(">", "gt_").replace("=", "eq_").replace("|", "pipe_").replace("?", "q")
    with_descr(f"descr_code_{tag}", repr(k), np.dtype(k).itemsize, f"{k!r} -> numpy.dtype")

for name, d, size, why in [
    ("descr_lt_float32", "'<float32'", 4, "'<float32': a byte order before a name -> TypeError"),
    ("descr_gt_float64", "'>float64'", 8, "'>float64' -> TypeError"),
    ("descr_leading_space", "' <f4'", 4, "' <f4' -> TypeError"),
    ("descr_trailing_space", "'<f4 '", 4, "'<f4 ' -> TypeError"),
    ("descr_empty", "''", 4, "'' -> TypeError"),
    ("descr_q7", "'<q7'", 4, "'<q7' -> TypeError"),
    ("descr_f3", "'<f3'", 4, "'<f3' -> TypeError"),
    ("descr_i16", "'<i16'", 4, "'<i16' (no int128) -> TypeError"),
    ("descr_int0", "'int0'", 8, "'int0' removed in NumPy 2 -> TypeError"),
    ("descr_float_", "'float_'", 8, "'float_' removed in NumPy 2 -> TypeError"),
    ("descr_int", "5", 4, "5: not iterable -> TypeError -> ValueError"),
    ("descr_none", "None", 4, "None -> ValueError"),
    ("descr_true", "True", 4, "True -> ValueError"),
    ("descr_bytes", "b'<f4'", 4, "b'<f4': fields are ints -> TypeError -> ValueError"),
    ("descr_tuple_1", "('<f4',)", 4, "('<f4',): descr[1] -> IndexError (not caught)"),
    ("descr_list_of_str", "['<f4']", 4, "['<f4']: field '<f4' unpacks to 3 chars -> TypeError"),
    ("descr_dict_names", "{'names': ['a'], 'formats': ['<f4']}", 4, "a dict: iterates its keys -> ValueError"),
    ("descr_object", "'|O'", 8, "'|O' -> 'Object arrays cannot be loaded when allow_pickle=False'"),
    ("descr_object_O8", "'O8'", 8, "'O8' is object -> refused"),
    ("descr_struct_object", "[('a', '|O')]", 8, "a structured dtype with an object field -> refused"),
    ("descr_subarray_int", "('<f4', 2)", 8, "('<f4', 2) -> a (2,) sub-array of float32"),
    ("descr_subarray_tuple", "('<f4', (2,))", 8, "('<f4', (2,)) -> float32 array of shape (3, 2)"),
    ("descr_subarray_str", "'(2,)<f4'", 8, "'(2,)<f4' -> float32 array of shape (3, 2)"),
    ("descr_subarray_str_2f4", "'2<f4'", 8, "'2<f4' -> float32 array of shape (3, 2)"),
    ("descr_subarray_empty", "('<f4', ())", 4, "('<f4', ()) -> plain float32"),
    ("descr_subarray_1", "('<f4', (1,))", 4, "('<f4', (1,)): fromfile gives (3, 1), size == count, reshape -> float32 (3,)"),
    ("descr_subarray_int_1", "('<f4', 1)", 4, "('<f4', 1): as (1,) -> float32 (3,)"),
    ("descr_subarray_str_1", "'(1,)<f4'", 4, "'(1,)<f4' -> float32 (3,)"),
    ("descr_subarray_1x1_i2", "('>i2', (1, 1))", 2, "('>i2', (1, 1)) -> int16 (3,)"),
    ("descr_subarray_nested", "(('<i2', (2,)), (3,))", 12, "nested sub-arrays -> int16 array of shape (3, 3, 2)"),
    ("descr_M8_generic", "'<M8'", 8, "'<M8' generic datetime -> accepted (unsupported)"),
    ("descr_M8_ns", "'<M8[ns]'", 8, "datetime64[ns] (unsupported)"),
    ("descr_m8_s", "'<m8[s]'", 8, "timedelta64[s] (unsupported)"),
    ("descr_b1", "'|b1'", 1, "bool as numpy.save writes it (unsupported)"),
    ("descr_c8", "'<c8'", 8, "complex64 (unsupported)"),
    ("descr_c16", "'>c16'", 16, "complex128 big-endian (unsupported)"),
    ("descr_f16_longdouble", "'<f16'", 16, "'<f16' is longdouble on x86-64 (unsupported)"),
    ("descr_g", "'g'", 16, "'g' longdouble (unsupported)"),
    ("descr_S3", "'|S3'", 3, "bytes (unsupported)"),
    ("descr_a3", "'a3'", 3, "'a3' is 'S3' (unsupported)"),
    ("descr_U2", "'<U2'", 8, "str (unsupported)"),
    ("descr_V4", "'|V4'", 4, "void (unsupported)"),
    ("descr_S0", "'|S0'", 0, "'S0': zero-size bytes"),
    ("descr_struct", "[('a', '<f4'), ('b', '<i4')]", 8, "structured (unsupported)"),
    ("descr_struct_one", "[('a', '<f4')]", 4, "one-field structured (unsupported)"),
    ("descr_struct_shape_field", "[('a', '<f4', (2,))]", 8, "structured with a sub-array field (unsupported)"),
    ("descr_struct_padding", "[('', '|V4')]", 4, "only padding: no fields, itemsize 4"),
    ("descr_struct_unnamed_f4", "[('', '<f4')]", 4, "a field named '' that is not void padding"),
    ("descr_struct_empty", "[]", 0, "[] -> a structured dtype with no fields, itemsize 0"),
    ("descr_struct_comma_str", "'<f4,<i4'", 8, "'<f4,<i4' -> structured (unsupported)"),
    ("descr_struct_comma_one", "'<f4,'", 4, "'<f4,' -> one-field structured (unsupported)"),
    ("descr_dict_ab", "{'ab': 0}", 1, "{'ab': 0}: the key 'ab' unpacks to name 'a', type 'b' -> [('a', 'i1')]"),
]:
    with_descr(name, d, size, why)


# ---------------------------------------------------------------------------------------------
# The data: `numpy.fromfile(fp, dtype, count)`, then `if array.size != count` -> ValueError
# ("Failed to read all data"); bytes after the array are ignored.

case("data_none.npy", std(data=b""), "no data for 3 elements -> 'Failed to read all data'", stage="data")
case("data_short_element.npy", std(data=DATA3[:8]), "2 of 3 elements -> refused", stage="data")
case("data_short_partial.npy", std(data=DATA3[:11]), "11 of 12 bytes -> refused", stage="data")
case("data_long_element.npy", std(data=DATA3 + f4(9)), "one element too many -> accepted")
case("data_long_partial.npy", std(data=DATA3 + b"\x01\x02"), "2 bytes after the data -> accepted")
case("data_long_much.npy", std(data=DATA3 + bytes(200)), "200 bytes after the data -> accepted")
case(
    "data_short_v2.npy",
    std(data=DATA3[:4], version=(2, 0)),
    "v2, 1 of 3 elements -> refused",
    stage="data",
)
case(
    "data_short_u1_2d.npy",
    std(descr="'|u1'", shape="(4, 4)", data=bytes(15)),
    "u1 (4, 4), 15 bytes -> refused",
    stage="data",
)
case(
    "data_short_fortran.npy",
    std(fortran="True", shape="(2, 2)", data=f4(1, 2, 3)),
    "fortran (2, 2), 3 elements -> refused",
    stage="data",
)


# ---------------------------------------------------------------------------------------------

def supported(dt):
    """A dtype relu processes: float16/32/64 and 8- to 64-bit integers, either byte order."""
    return dt.names is None and dt.subdtype is None and (dt.kind, dt.itemsize) in {
        ("f", 2), ("f", 4), ("f", 8), ("i", 1), ("i", 2), ("i", 4), ("i", 8), ("u", 1), ("u", 2), ("u", 4), ("u", 8)
    }


def first_line(s):
    s = re.sub(r" at 0x[0-9a-fA-F]+", "", str(s)).strip()  # ast node addresses vary by run
    line = s.splitlines()[0] if s else ""
    return line[:240]


def numpy_verdict(path):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            a = np.load(path)
        except Exception as e:  # noqa: BLE001 - every refusal is recorded
            return {"numpy": "refuse", "error": f"{type(e).__name__}: {first_line(e)}"}
        out = {"numpy": "accept"}
        if isinstance(a, np.ndarray):
            out["dtype"] = str(a.dtype)
            out["dtype_name"] = a.dtype.name
            out["shape"] = list(a.shape)
            out["supported"] = supported(a.dtype)
        else:  # an NpzFile
            out["npz_members"] = sorted(a.files)
            a.close()
        msgs = sorted({f"{x.category.__name__}: {first_line(x.message)}" for x in w})
        if msgs:
            out["warning"] = "; ".join(msgs)
        return out


def main():
    if os.environ.get("PYTHONHASHSEED") != "0":  # NumPy's messages print sets: fix their order
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    if len(sys.argv) != 2:
        sys.exit("usage: make_npy_audit.py OUTDIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        if f.endswith(".npy"):
            os.remove(os.path.join(out, f))
    expected = {}
    for name, data, why, extra in CASES:
        path = os.path.join(out, name)
        with open(path, "wb") as fh:
            fh.write(data)
        e = {"why": why}
        e.update(numpy_verdict(path))
        stage = extra.get("stage")
        if e["numpy"] == "refuse":
            e["relu"] = "refuse"
            if stage == "data":
                e["stage"] = "data"
                e["inspect"] = "any"  # inspect reads the header only
        elif extra.get("dispatch") == "npz":
            # numpy.load dispatches on the content; relu on the extension (.npy -> .npy reader).
            e["relu"] = "refuse"
            e["dispatch"] = "npz"
        elif e.pop("supported"):
            e["relu"] = "accept"
        else:
            e["relu"] = "refuse"
            e["unsupported"] = True
            e["inspect"] = "any"  # inspect may show a valid header of an unsupported dtype
        if stage and stage != "data":
            e["stage"] = stage
        expected[name] = e
    with open(os.path.join(out, "expected.json"), "w") as fh:
        json.dump(expected, fh, indent=1, sort_keys=True, ensure_ascii=True)
        fh.write("\n")
    acc = sum(e["numpy"] == "accept" for e in expected.values())
    print(f"{len(expected)} cases ({acc} accepted by numpy {np.__version__}) in {out}")


if __name__ == "__main__":
    main()
