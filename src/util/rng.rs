//! The one random number generator of the crate: xoshiro256** seeded through
//! SplitMix64. Written out here rather than taken from `rand` so that a seed means
//! the same stream forever: a dependency update must not silently change splits,
//! initial weights, sampled negatives (and with them every cached model) or the
//! bytes of `sample-data`.
//!
//! Two range maps exist and both are pinned, because each already decides stored
//! bytes: [`Rng::below`] (Lemire's multiply-shift on the high 32 bits, used by the
//! model code) and [`Rng::below_u64`] (a 64×64→128-bit multiply, used by the sample
//! generator). `unit` and `normal` are shared by both.

#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// An independent stream for a purpose (`stream` distinguishes the uses of one seed).
    pub fn derive(seed: u64, stream: u64) -> Rng {
        Rng::new(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` (Lemire's multiply-shift on the high 32 bits; the bias is
    /// below 2^-32 for n < 2^32). The model code's map.
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    /// Uniform in `0..n` through a 128-bit product of all 64 bits. The sample
    /// generator's map.
    pub fn below_u64(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Fisher–Yates with [`Rng::below`].
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }

    /// Fisher–Yates with [`Rng::below_u64`].
    pub fn shuffle_u64<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below_u64(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_pinned() {
        // A changed stream changes every split and model: this must never move.
        let mut r = Rng::new(42);
        let v: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(v, GOLDEN);
        let mut r = Rng::new(7);
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            counts[r.below(4)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (900..1100).contains(&c)),
            "{counts:?}"
        );
    }

    /// Both range maps, `unit`, `normal` and both shuffles, pinned on one seed: the
    /// model bits and the committed sample depend on each of them.
    #[test]
    fn both_range_maps_are_pinned() {
        let mut r = Rng::new(2024);
        let lemire: Vec<usize> = (0..6).map(|_| r.below(1000)).collect();
        let wide: Vec<u64> = (0..6).map(|_| r.below_u64(1000)).collect();
        let unit = r.unit();
        let normal = r.normal();
        let mut a: Vec<u32> = (0..8).collect();
        r.shuffle(&mut a);
        let mut b: Vec<u32> = (0..8).collect();
        r.shuffle_u64(&mut b);
        assert_eq!(
            (lemire, wide, unit.to_bits(), normal.to_bits(), a, b),
            (
                vec![55, 782, 72, 159, 773, 244],
                vec![394, 257, 556, 50, 720, 931],
                0.881_997_288_575_470_1_f64.to_bits(),
                0.139_993_623_327_851_78_f64.to_bits(),
                vec![2, 6, 5, 7, 4, 3, 0, 1],
                vec![3, 7, 4, 5, 0, 6, 2, 1],
            )
        );
    }

    const GOLDEN: [u64; 3] = [
        1_546_998_764_402_558_742,
        6_990_951_692_964_543_102,
        12_544_586_762_248_559_009,
    ];
}
