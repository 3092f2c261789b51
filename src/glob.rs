//! Shell-style patterns over member and tensor names (`FILE:NAME`, SPEC §6): `*` any run of
//! characters (`.` and `/` included: tensor names are paths like `layers.0.out`), `?` one
//! character, `[abc]`, `[a-z]`, `[!a]`/`[^a]` one character of (or not of) a set. A name equal
//! to the pattern is chosen before the pattern is read as one, so names holding `*` or `[` stay
//! reachable.

/// Whether `pattern` has anything that makes it more than a name.
pub fn is_pattern(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// Whether `name` matches `pattern` as a whole.
pub fn matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // the classic two-pointer match with one backtrack point (the last `*`): linear for
    // patterns without `*`, O(len(p)·len(n)) at worst, never exponential
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
            continue;
        }
        if i < p.len() {
            if let Some((ok, next)) = one(&p, i, n[j]) {
                if ok {
                    i = next;
                    j += 1;
                    continue;
                }
            }
        }
        match star {
            Some((si, sj)) => {
                i = si + 1;
                j = sj + 1;
                star = Some((si, sj + 1));
            }
            None => return false,
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

/// Whether the pattern element at `p[i]` (not `*`) takes `c`, and where the next element starts.
/// `None`: the element is a `[` without its `]`, taken as a plain `[`.
fn one(p: &[char], i: usize, c: char) -> Option<(bool, usize)> {
    match p[i] {
        '?' => Some((true, i + 1)),
        '[' => match class(p, i, c) {
            Some(r) => Some(r),
            None => Some((c == '[', i + 1)),
        },
        x => Some((x == c, i + 1)),
    }
}

/// `[...]` starting at `p[i]`: whether it takes `c` and the index after its `]`; `None` when
/// it is not closed.
fn class(p: &[char], i: usize, c: char) -> Option<(bool, usize)> {
    let mut k = i + 1;
    let negate = matches!(p.get(k), Some('!' | '^'));
    if negate {
        k += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let &x = p.get(k)?;
        if x == ']' && !first {
            return Some((hit != negate, k + 1));
        }
        first = false;
        if p.get(k + 1) == Some(&'-') && p.get(k + 2).is_some_and(|&y| y != ']') {
            hit |= (x..=p[k + 2]).contains(&c);
            k += 3;
        } else {
            hit |= x == c;
            k += 1;
        }
    }
}

/// The names `pattern` picks, as indices into `names`: the one equal to it, else every match
/// (in the given order). Empty when nothing matches.
pub fn select<S: AsRef<str>>(names: &[S], pattern: &str) -> Vec<usize> {
    if let Some(i) = names.iter().position(|n| n.as_ref() == pattern) {
        return vec![i];
    }
    if !is_pattern(pattern) {
        return Vec::new();
    }
    names.iter().enumerate().filter(|(_, n)| matches(pattern, n.as_ref())).map(|(i, _)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_as_a_shell_reads_them() {
        for (p, n, want) in [
            ("layer*", "layer1", true),
            ("layer*", "layer", true),
            ("layer*", "alayer1", false),
            ("*.out", "layers.0.out", true),
            ("layers.?.out", "layers.3.out", true),
            ("layers.?.out", "layers.10.out", false),
            ("layer[12]", "layer2", true),
            ("layer[12]", "layer3", false),
            ("layer[!12]", "layer3", true),
            ("layer[^12]", "layer1", false),
            ("layer[0-9]", "layer7", true),
            ("layer[]]", "layer]", true),
            ("layer[", "layer[", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("**", "", true),
            ("", "", true),
            ("", "x", false),
        ] {
            assert_eq!(matches(p, n), want, "{p} against {n}");
        }
    }

    #[test]
    fn an_exact_name_wins_over_the_pattern() {
        let names = ["a*", "ab", "ac"];
        assert_eq!(select(&names, "a*"), vec![0]);
        assert_eq!(select(&names, "a?"), vec![0, 1, 2]);
        assert_eq!(select(&names, "b"), Vec::<usize>::new());
        assert_eq!(select(&names, "ab"), vec![1]);
    }
}
