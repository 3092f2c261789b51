//! Fast paths that need both a format and an activation, kept together here so that neither
//! `format/` nor the kernel learns about the other: relu decided on CSV text by its sign, with no
//! number converted (`relu_plain_record`). The table driver (`table.rs`) uses it when the output
//! is CSV of float64 and nothing else (statistics, an upstream) needs the values.

use crate::format::csv::plain_record;

/// relu of one plain record (see `plain_record`), written to `out` with `out_delim` without
/// converting a single number: a value relu keeps is copied, a negative one becomes `0.0`.
/// Returns where the next record starts, or `None` (with `out` as it was) for anything else: the
/// caller parses that record in full, which also finds its errors.
///
/// A negative number is -0 (kept by relu) when all its digits are 0; otherwise it is nonzero, as
/// long as it cannot underflow: its digits make an integer ≥ 1, so a scale of at least 10^-99
/// (fraction digits counted) keeps it far above the smallest subnormal.
#[inline]
pub fn relu_plain_record(
    b: &[u8],
    i: usize,
    delim: u8,
    out_delim: u8,
    cols: usize,
    out: &mut Vec<u8>,
) -> Option<usize> {
    let mark = out.len();
    let next = plain_record(b, i, delim, cols, |c, start, p| {
        let negative = p.neg && p.nonzero;
        if negative && p.e10 < -99 {
            return false;
        }
        if negative {
            out.extend_from_slice(b"0.0");
        } else {
            out.extend_from_slice(&b[start..p.end]);
        }
        out.push(if c + 1 < cols { out_delim } else { b'\n' });
        true
    });
    if next.is_none() {
        out.truncate(mark);
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_records_take_the_fast_path() {
        let mut out = Vec::new();
        let b = b"1.5,-2,-0.0,+3e5,-1e-5,-0e7\r\n";
        assert_eq!(relu_plain_record(b, 0, b',', b',', 6, &mut out), Some(b.len()));
        assert_eq!(out, b"1.5,0.0,-0.0,+3e5,0.0,-0e7\n");
        out.clear();
        assert_eq!(relu_plain_record(b, 0, b',', b'\t', 6, &mut out), Some(b.len()));
        assert_eq!(out, b"1.5\t0.0\t-0.0\t+3e5\t0.0\t-0e7\n");
        // 2^64 wraps the digit integer to 0, yet it is a nonzero negative; 24 zero digits are -0.
        out.clear();
        let b = b"-18446744073709551616,-0.00000000000000000000000\n";
        assert_eq!(relu_plain_record(b, 0, b',', b',', 2, &mut out), Some(b.len()));
        assert_eq!(out, b"0.0,-0.00000000000000000000000\n");
        for bad in [
            &b"1, 2\n"[..],
            b"1,2",
            b"1,2,3\n",
            b"\"1\",2\n",
            b"nan,1\n",
            b"-1e-400,1\n",
            b"1.,2\n",
            b".5,1\n",
            b"1e,2\n",
        ] {
            let mut out = b"keep".to_vec();
            assert_eq!(relu_plain_record(bad, 0, b',', b',', 2, &mut out), None, "{}", String::from_utf8_lossy(bad));
            assert_eq!(out, b"keep");
        }
    }
}
