//! The propagation's inner loops over one row's edges, compiled for the baseline
//! x86-64 target (SSE2), with AVX2 and (the weighted sum) with AVX-512, chosen at
//! run time. AVX-512 dot products measured no faster than AVX2 ones (0.52 s per
//! epoch either way, one thread), so they have none.
//!
//! No build uses FMA, and every loop fixes its order of operations (element-wise
//! `o += w · x`; dot products in eight interleaved accumulators summed in a fixed
//! tree), so all builds give the same bits: a model trained on a machine with
//! AVX-512 equals one trained without it. The test below holds them to that.

/// `out += Σ_e w[e] · rows[cols[e]]`, rows of `out.len()` values.
pub fn weighted_sum(out: &mut [f32], cols: &[u32], w: &[f32], rows: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, checked just above.
        return unsafe { weighted_sum_avx512(out, cols, w, rows) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { weighted_sum_avx2(out, cols, w, rows) };
    }
    weighted_sum_any(out, cols, w, rows)
}

/// `out[e] = ⟨q, rows[cols[e]]⟩`, rows of `q.len()` values.
pub fn dots(q: &[f32], cols: &[u32], rows: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { dots_avx2(q, cols, rows, out) };
    }
    dots_any(q, cols, rows, out)
}

/// `weighted_sum` for one vector width: the same sums as [`weighted_sum_any`],
/// element by element in edge order, with the output held in registers across a
/// row's edges, up to four registers of columns at a time.
macro_rules! weighted_sum_simd {
    (
        $(#[$doc:meta])*
        $sum:ident, $block:ident, $feature:literal, $lanes:literal,
        $vec:ident, $load:ident, $store:ident, $set1:ident, $add:ident, $mul:ident
    ) => {
        $(#[$doc])*
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        fn $sum(out: &mut [f32], cols: &[u32], w: &[f32], rows: &[f32]) {
            let d = out.len();
            let body = d - d % $lanes;
            let mut k = 0;
            while k < body {
                let blocks = ((body - k) / $lanes).min(4);
                match blocks {
                    1 => $block::<1>(out, cols, w, rows, k),
                    2 => $block::<2>(out, cols, w, rows, k),
                    3 => $block::<3>(out, cols, w, rows, k),
                    _ => $block::<4>(out, cols, w, rows, k),
                }
                k += blocks * $lanes;
            }
            for (k, o) in out.iter_mut().enumerate().skip(body) {
                for (&c, &w) in cols.iter().zip(w) {
                    *o += w * rows[c as usize * d + k];
                }
            }
        }

        /// Columns k..k + N registers of the weighted sum.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        fn $block<const N: usize>(
            out: &mut [f32],
            cols: &[u32],
            w: &[f32],
            rows: &[f32],
            k: usize,
        ) {
            use std::arch::x86_64::*;
            let d = out.len();
            let o = &mut out[k..k + $lanes * N];
            // SAFETY (every load and store below): each pointer is into a slice
            // bounds-checked to hold N registers of values from it, and the loads
            // and stores are unaligned.
            let mut acc: [$vec; N] =
                std::array::from_fn(|r| unsafe { $load(o.as_ptr().add($lanes * r)) });
            for (&c, &w) in cols.iter().zip(w) {
                let base = c as usize * d + k;
                let row = &rows[base..base + $lanes * N];
                let wv = $set1(w);
                for (r, a) in acc.iter_mut().enumerate() {
                    let x = unsafe { $load(row.as_ptr().add($lanes * r)) };
                    *a = $add(*a, $mul(wv, x));
                }
            }
            for (r, a) in acc.iter().enumerate() {
                unsafe { $store(o.as_mut_ptr().add($lanes * r), *a) };
            }
        }
    };
}

weighted_sum_simd!(
    /// AVX2: 8 columns a register, up to 32 at a time.
    weighted_sum_avx2, weighted_block_avx2, "avx2", 8,
    __m256, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_set1_ps, _mm256_add_ps, _mm256_mul_ps
);
weighted_sum_simd!(
    /// AVX-512: 16 columns a register, up to 64 at a time.
    weighted_sum_avx512, weighted_block_avx512, "avx512f", 16,
    __m512, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_set1_ps, _mm512_add_ps, _mm512_mul_ps
);

/// The same products as [`dots_any`]: lane l of the accumulator sums elements
/// l, l + 8, … in order, then [`finish`]'s tree; four rows at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dots_avx2(q: &[f32], cols: &[u32], rows: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let d = q.len();
    let body = d - d % 8;
    let row = |c: u32| &rows[c as usize * d..(c as usize + 1) * d];
    let lanes = |a: __m256| {
        let mut v = [0f32; 8];
        // SAFETY: v holds 8 values; the store is unaligned.
        unsafe { _mm256_storeu_ps(v.as_mut_ptr(), a) };
        v
    };
    let mut quads = cols.chunks_exact(4).zip(out.chunks_exact_mut(4));
    for (c, o) in quads.by_ref() {
        let rs = [row(c[0]), row(c[1]), row(c[2]), row(c[3])];
        let mut acc = [_mm256_setzero_ps(); 4];
        for k in (0..body).step_by(8) {
            // SAFETY: q and every row hold d ≥ k + 8 values.
            let x = unsafe { _mm256_loadu_ps(q.as_ptr().add(k)) };
            for (a, r) in acc.iter_mut().zip(&rs) {
                let y = unsafe { _mm256_loadu_ps(r.as_ptr().add(k)) };
                *a = _mm256_add_ps(*a, _mm256_mul_ps(x, y));
            }
        }
        for ((o, a), r) in o.iter_mut().zip(acc).zip(&rs) {
            *o = finish(&lanes(a), &q[body..], &r[body..]);
        }
    }
    let rest = cols.len() - cols.len() % 4;
    for (&c, o) in cols[rest..].iter().zip(&mut out[rest..]) {
        *o = dot(q, row(c));
    }
}

#[inline(always)]
fn weighted_sum_any(out: &mut [f32], cols: &[u32], w: &[f32], rows: &[f32]) {
    let d = out.len();
    for (&c, &w) in cols.iter().zip(w) {
        let c = c as usize;
        axpy(out, w, &rows[c * d..(c + 1) * d]);
    }
}

/// Four rows at a time: one dot product is a chain of dependent adds, so four
/// independent chains keep the vector units busy. Each product is still [`dot`]'s
/// sum, in [`dot`]'s order.
#[inline(always)]
fn dots_any(q: &[f32], cols: &[u32], rows: &[f32], out: &mut [f32]) {
    let d = q.len();
    let row = |c: u32| &rows[c as usize * d..(c as usize + 1) * d];
    let mut quads = cols.chunks_exact(4).zip(out.chunks_exact_mut(4));
    for (c, o) in quads.by_ref() {
        let rs = [row(c[0]), row(c[1]), row(c[2]), row(c[3])];
        let mut acc = [[0f32; 8]; 4];
        let body = d - d % 8;
        for k in (0..body).step_by(8) {
            let x = &q[k..k + 8];
            for (acc, r) in acc.iter_mut().zip(&rs) {
                for ((a, x), y) in acc.iter_mut().zip(x).zip(&r[k..k + 8]) {
                    *a += x * y;
                }
            }
        }
        for ((o, acc), r) in o.iter_mut().zip(&acc).zip(&rs) {
            *o = finish(acc, &q[body..], &r[body..]);
        }
    }
    let rest = cols.len() - cols.len() % 4;
    for (&c, o) in cols[rest..].iter().zip(&mut out[rest..]) {
        *o = dot(q, row(c));
    }
}

/// ⟨a, b⟩ in eight interleaved accumulators, summed in a fixed tree.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, ra) = a.split_at(a.len() - a.len() % 8);
    let (cb, rb) = b.split_at(ca.len());
    for (x, y) in ca.chunks_exact(8).zip(cb.chunks_exact(8)) {
        for ((a, x), y) in acc.iter_mut().zip(x).zip(y) {
            *a += x * y;
        }
    }
    finish(&acc, ra, rb)
}

/// The accumulators' fixed tree, then the tail past the last multiple of eight.
#[inline(always)]
fn finish(acc: &[f32; 8], ra: &[f32], rb: &[f32]) -> f32 {
    let mut s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// e^x for x ≤ 0 (the softmax's logits less their maximum), in plain arithmetic
/// the compiler vectorises, unlike a call into libm: Cody–Waite reduction
/// x = n·ln 2 + r with |r| ≤ ln 2 / 2, Cephes' degree-6 polynomial for e^r, and
/// 2^n built in the exponent bits. Within 2 ulp of e^x down to x = −87; 0 below
/// that (a softmax term under e^−87 ≈ 1.6·10⁻³⁸ of its row's largest). NaN stays
/// NaN. The operations are fixed (no fused multiply-add), so every build gives
/// the same bits.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    // Adding 1.5 · 2²³ rounds to an integer (ties to even) held in the low bits.
    const SHIFT: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_4; // the f32 355/512 exactly: n · LN2_HI is exact
    const LN2_LO: f32 = -2.121_944_4e-4;
    let floor = x < -87.0;
    let xc = if floor { -87.0 } else { x };
    let t = xc * std::f32::consts::LOG2_E + SHIFT;
    let n = t - SHIFT;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e = p * (r * r) + r + 1.0;
    // n ∈ [−126, 0]: a normal power of two.
    let n = t.to_bits() as i32 - SHIFT.to_bits() as i32;
    let scale = f32::from_bits(((n + 127) as u32) << 23);
    if floor { 0.0 } else { e * scale }
}

/// Σ x in eight interleaved partial sums, added in a fixed tree (vectorisable,
/// and the same bits in every build).
#[inline(always)]
pub fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (body, tail) = x.split_at(x.len() - x.len() % 8);
    for c in body.chunks_exact(8) {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    let mut s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for v in tail {
        s += v;
    }
    s
}

/// `out += a · x`, element-wise.
#[inline(always)]
pub fn axpy(out: &mut [f32], a: f32, x: &[f32]) {
    for (o, v) in out.iter_mut().zip(x) {
        *o += a * v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gnn::rng::Rng;

    #[test]
    fn exp_is_within_two_ulp_and_floors_at_zero() {
        let mut worst = 0f64;
        for k in 0..=870_000 {
            let x = -(k as f32) * 1e-4;
            let got = exp_nonpositive(x) as f64;
            let want = (x as f64).exp();
            let ulp = (want as f32).next_up() as f64 - want as f32 as f64;
            worst = worst.max((got - want).abs() / ulp);
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-87.5), 0.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
        assert!(exp_nonpositive(f32::NAN).is_nan());
        let x = [3.0f32, 1.0, 1e-3, 2.5, 7.0, 1.0, 1.0, 4.0, 0.5, 0.25];
        assert_eq!(sum(&x), x.iter().map(|&v| v as f64).sum::<f64>() as f32);
    }

    /// The dispatched kernels (AVX-512 or AVX2, whichever the CPU has) and the
    /// AVX2 ones equal the portable loops bit for bit, for dims that are and are
    /// not multiples of eight and sixteen and for every register block width
    /// (8 to 32 columns with AVX2, 16 to 64 with AVX-512).
    #[test]
    fn every_build_gives_the_same_bits() {
        let mut r = Rng::new(11);
        for d in [64, 80, 48, 40, 24, 16, 13, 3] {
            let rows: Vec<f32> = (0..50 * d).map(|_| r.normal() as f32).collect();
            let cols: Vec<u32> = (0..40).map(|_| r.below(50) as u32).collect();
            let w: Vec<f32> = (0..40).map(|_| r.normal() as f32).collect();
            let q = &rows[7 * d..8 * d];

            let (mut fast, mut slow) = (vec![0.5f32; d], vec![0.5f32; d]);
            weighted_sum(&mut fast, &cols, &w, &rows);
            weighted_sum_any(&mut slow, &cols, &w, &rows);
            assert_eq!(fast, slow, "weighted_sum, d = {d}");
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // On a CPU with AVX-512 the dispatch above took that path; AVX2 too.
                let mut avx2 = vec![0.5f32; d];
                // SAFETY: the CPU has AVX2, checked just above.
                unsafe { weighted_sum_avx2(&mut avx2, &cols, &w, &rows) };
                assert_eq!(avx2, slow, "weighted_sum (AVX2), d = {d}");
            }
            assert_ne!(fast, vec![0.5f32; d]);

            let (mut fast, mut slow) = (vec![0f32; 40], vec![0f32; 40]);
            dots(q, &cols, &rows, &mut fast);
            dots_any(q, &cols, &rows, &mut slow);
            assert_eq!(fast, slow, "dots, d = {d}");
            let one_by_one: Vec<f32> = cols
                .iter()
                .map(|&c| dot(q, &rows[c as usize * d..(c as usize + 1) * d]))
                .collect();
            assert_eq!(fast, one_by_one, "dots in fours, d = {d}");
            let naive: f64 = q
                .iter()
                .zip(&rows[cols[0] as usize * d..])
                .map(|(a, b)| (a * b) as f64)
                .sum();
            assert!((fast[0] as f64 - naive).abs() < 1e-4);
        }
    }
}
