//! How far a distribution moved (SPEC §7, `relu diff`): measures between two histograms over the
//! same edges, and the change in units' active rates. Pure arithmetic on counts: no files, no
//! jobs. Each measure follows its SciPy reference step for step (docs/analyses.md):
//!
//! * `w1`: `scipy.stats.wasserstein_distance(centres, centres, a, b)` — Σ |F_A − F_B| · Δcentre,
//!   with F the cumulative count over the total (SciPy's `_cdf_distance`);
//! * `js`: `scipy.spatial.distance.jensenshannon(p, q, base=2) ** 2` — (KL(p‖m) + KL(q‖m)) / 2 in bits;
//! * `psi`: Σ (p − q) · ln(p / q), each fraction floored at 1e-6;
//! * `ks`: the largest |F_A − F_B| at the edges.
//!
//! p and q are the bin counts over their totals (the finite values inside the range). Sums are
//! compensated (Neumaier), so they carry one rounding, not one per term.

use crate::stats::UnitsJson;

/// The floor of a fraction in PSI (SPEC §7): an empty bin would make ln(p/q) infinite.
pub const PSI_FLOOR: f64 = 1e-6;

/// The four measures between two histograms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measures {
    pub w1: f64,
    pub js: f64,
    pub psi: f64,
    pub ks: f64,
}

/// A compensated sum (Neumaier's variant of Kahan's): the error of each addition is kept and
/// added back at the end.
#[derive(Default)]
struct Sum {
    s: f64,
    c: f64,
}

impl Sum {
    fn add(&mut self, x: f64) {
        let t = self.s + x;
        if self.s.abs() >= x.abs() {
            self.c += (self.s - t) + x;
        } else {
            self.c += (x - t) + self.s;
        }
        self.s = t;
    }

    fn value(&self) -> f64 {
        self.s + self.c
    }
}

/// The centre of the bin `[lo, hi]` as NumPy's `(e[:-1] + e[1:]) / 2` gives it (halving first
/// where the sum would overflow: the same value wherever NumPy's is finite).
fn centre(lo: f64, hi: f64) -> f64 {
    let c = (lo + hi) / 2.0;
    if c.is_finite() {
        c
    } else {
        lo / 2.0 + hi / 2.0
    }
}

/// `x · ln(x / y)`, SciPy's `rel_entr` for `x, y ≥ 0` (0 where `x` is 0).
fn rel_entr(x: f64, y: f64) -> f64 {
    if x > 0.0 {
        x * (x / y).ln()
    } else {
        0.0
    }
}

/// The measures between the histograms `a` and `b` over `edges` (`a.len() + 1` of them);
/// `None` when either side counted nothing (no distribution to compare).
pub fn measures(edges: &[f64], a: &[u64], b: &[u64]) -> Option<Measures> {
    assert!(a.len() == b.len() && edges.len() == a.len() + 1, "histograms over different edges");
    let (na, nb): (u64, u64) = (a.iter().sum(), b.iter().sum());
    if na == 0 || nb == 0 {
        return None;
    }
    let (ta, tb) = (na as f64, nb as f64);
    let (mut w1, mut kl_a, mut kl_b, mut psi) = (Sum::default(), Sum::default(), Sum::default(), Sum::default());
    let (mut cum_a, mut cum_b) = (0u64, 0u64);
    let mut ks = 0f64;
    let n = a.len();
    for i in 0..n {
        let (p, q) = (a[i] as f64 / ta, b[i] as f64 / tb);
        let m = (p + q) / 2.0;
        kl_a.add(rel_entr(p, m));
        kl_b.add(rel_entr(q, m));
        let (fp, fq) = (p.max(PSI_FLOOR), q.max(PSI_FLOOR));
        psi.add((fp - fq) * (fp / fq).ln());
        cum_a += a[i];
        cum_b += b[i];
        // the CDFs after bin i: at edge i + 1, and between centre i and centre i + 1
        let gap = (cum_a as f64 / ta - cum_b as f64 / tb).abs();
        ks = ks.max(gap);
        if i + 1 < n {
            w1.add(gap * (centre(edges[i + 1], edges[i + 2]) - centre(edges[i], edges[i + 1])));
        }
    }
    // rounding can leave a sum of exactly cancelling terms a hair below zero
    let js = ((kl_a.value() + kl_b.value()) / std::f64::consts::LN_2 / 2.0).max(0.0);
    Some(Measures { w1: w1.value(), js, psi: psi.value().max(0.0), ks })
}

/// How the units changed from A to B.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitDrift {
    /// Dead in B and not in A, ascending.
    pub newly_dead: Vec<u64>,
    /// Dead in A and not in B, ascending.
    pub revived: Vec<u64>,
    /// The largest |active rate in B − active rate in A|, and the first unit that has it.
    pub max_abs_delta: f64,
    pub argmax: u64,
    /// The mean of |Δ active rate| over the units.
    pub mean_abs_delta: f64,
}

/// A unit's active rate: its active count over its elements (0 for a unit of no elements).
fn rate(active: u64, per_unit: u64) -> f64 {
    if per_unit == 0 {
        0.0
    } else {
        active as f64 / per_unit as f64
    }
}

/// The units' changes; `None` when the unit counts differ (not the same units) or there are none.
pub fn units(a: &UnitsJson, b: &UnitsJson) -> Option<UnitDrift> {
    if a.count != b.count || a.count == 0 || a.active_count.len() != b.active_count.len() {
        return None;
    }
    let dead_a: std::collections::BTreeSet<u64> = a.dead_indices.iter().copied().collect();
    let dead_b: std::collections::BTreeSet<u64> = b.dead_indices.iter().copied().collect();
    let (mut max, mut argmax, mut sum) = (-1.0f64, 0u64, Sum::default());
    for (i, (&ca, &cb)) in a.active_count.iter().zip(&b.active_count).enumerate() {
        let d = (rate(cb, b.elements_per_unit) - rate(ca, a.elements_per_unit)).abs();
        if d > max {
            (max, argmax) = (d, i as u64);
        }
        sum.add(d);
    }
    Some(UnitDrift {
        newly_dead: dead_b.difference(&dead_a).copied().collect(),
        revived: dead_a.difference(&dead_b).copied().collect(),
        max_abs_delta: max,
        argmax,
        mean_abs_delta: sum.value() / a.active_count.len() as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-15 * b.abs().max(1e-300)
    }

    #[test]
    fn equal_histograms_are_zero_apart() {
        let e = [0.0, 1.0, 2.0, 3.0];
        let m = measures(&e, &[3, 0, 7], &[6, 0, 14]).unwrap();
        assert_eq!(m, Measures { w1: 0.0, js: 0.0, psi: 0.0, ks: 0.0 });
        assert_eq!(measures(&e, &[0, 0, 0], &[1, 2, 3]), None);
    }

    #[test]
    fn hand_computed_values() {
        // edges 0, 1, 2: centres 0.5 and 1.5; p = (1, 0), q = (1/2, 1/2)
        let m = measures(&[0.0, 1.0, 2.0], &[4, 0], &[2, 2]).unwrap();
        // W1: |F_A - F_B| between the centres is 1 - 1/2, over a width of 1
        assert_eq!(m.w1, 0.5);
        // KS: 1/2 after the first bin, 0 after the last
        assert_eq!(m.ks, 0.5);
        // JS: m = (3/4, 1/4); KL(p||m) = ln(4/3); KL(q||m) = 1/2 ln(2/3) + 1/2 ln 2
        let js = ((4.0f64 / 3.0).ln() + 0.5 * (2.0f64 / 3.0).ln() + 0.5 * 2.0f64.ln()) / 2.0f64.ln() / 2.0;
        assert!(close(m.js, js), "{} {js}", m.js);
        // PSI: (1 - 1/2) ln 2 + (1e-6 - 1/2) ln(1e-6 / (1/2))
        let psi = 0.5 * 2.0f64.ln() + (1e-6 - 0.5) * (1e-6f64 / 0.5).ln();
        assert!(close(m.psi, psi), "{} {psi}", m.psi);
        // disjoint: JS is one bit, W1 the distance between the centres
        let m = measures(&[0.0, 1.0, 2.0, 3.0], &[5, 0, 0], &[0, 0, 9]).unwrap();
        assert_eq!((m.w1, m.js, m.ks), (2.0, 1.0, 1.0));
    }

    #[test]
    fn centres_of_huge_bins_stay_finite() {
        assert_eq!(centre(1.0, 3.0), 2.0);
        assert_eq!(centre(1.5e308, 1.7e308), 1.6e308);
    }

    fn unit(active: &[u64], per_unit: u64) -> UnitsJson {
        UnitsJson::from_counts(1, per_unit, active.to_vec(), 0.01)
    }

    #[test]
    fn unit_changes() {
        let a = unit(&[0, 5, 10, 0], 10);
        let b = unit(&[3, 0, 10, 0], 20);
        let u = units(&a, &b).unwrap();
        assert_eq!(u.newly_dead, vec![1]);
        assert_eq!(u.revived, vec![0]);
        // rates: A 0, .5, 1, 0; B .15, 0, .5, 0
        assert_eq!((u.max_abs_delta, u.argmax), (0.5, 1));
        assert!(close(u.mean_abs_delta, (0.15 + 0.5 + 0.5) / 4.0));
        assert_eq!(units(&a, &unit(&[1, 2, 3], 10)), None);
    }
}
