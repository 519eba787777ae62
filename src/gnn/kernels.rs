//! The propagation's inner loops over one row's edges, compiled twice: for the
//! baseline x86-64 target (SSE2) and with AVX2, chosen at run time.
//!
//! AVX2 is enabled without FMA, and every loop fixes its order of operations
//! (element-wise `o += w · x`; dot products in eight interleaved accumulators
//! summed in a fixed tree), so both builds give the same bits: a model trained on
//! a machine with AVX2 equals one trained without it. The test below holds them
//! to that.

/// `out += Σ_e w[e] · rows[cols[e]]`, rows of `out.len()` values.
pub fn weighted_sum(out: &mut [f32], cols: &[u32], w: &[f32], rows: &[f32]) {
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

/// The same sums as [`weighted_sum_any`], element by element in edge order, with
/// the output held in registers across a row's edges, 32 columns at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn weighted_sum_avx2(out: &mut [f32], cols: &[u32], w: &[f32], rows: &[f32]) {
    let d = out.len();
    let body = d - d % 8;
    let mut k = 0;
    while k < body {
        let blocks = ((body - k) / 8).min(4);
        match blocks {
            1 => weighted_block_avx2::<1>(out, cols, w, rows, k),
            2 => weighted_block_avx2::<2>(out, cols, w, rows, k),
            3 => weighted_block_avx2::<3>(out, cols, w, rows, k),
            _ => weighted_block_avx2::<4>(out, cols, w, rows, k),
        }
        k += blocks * 8;
    }
    for (k, o) in out.iter_mut().enumerate().skip(body) {
        for (&c, &w) in cols.iter().zip(w) {
            *o += w * rows[c as usize * d + k];
        }
    }
}

/// Columns k..k + 8N of `weighted_sum`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn weighted_block_avx2<const N: usize>(
    out: &mut [f32],
    cols: &[u32],
    w: &[f32],
    rows: &[f32],
    k: usize,
) {
    use std::arch::x86_64::*;
    let d = out.len();
    let o = &mut out[k..k + 8 * N];
    // SAFETY (every load and store below): each pointer is into a slice bounds-checked
    // to hold 8N values from it, and the loads and stores are unaligned.
    let mut acc: [__m256; N] =
        std::array::from_fn(|r| unsafe { _mm256_loadu_ps(o.as_ptr().add(8 * r)) });
    for (&c, &w) in cols.iter().zip(w) {
        let base = c as usize * d + k;
        let row = &rows[base..base + 8 * N];
        let wv = _mm256_set1_ps(w);
        for (r, a) in acc.iter_mut().enumerate() {
            let x = unsafe { _mm256_loadu_ps(row.as_ptr().add(8 * r)) };
            *a = _mm256_add_ps(*a, _mm256_mul_ps(wv, x));
        }
    }
    for (r, a) in acc.iter().enumerate() {
        unsafe { _mm256_storeu_ps(o.as_mut_ptr().add(8 * r), *a) };
    }
}

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

    /// The dispatched kernels (AVX2 where the CPU has it) equal the portable loops
    /// bit for bit, for dims that are and are not multiples of eight and for every
    /// register block width (8 to 32 columns).
    #[test]
    fn both_builds_give_the_same_bits() {
        let mut r = Rng::new(11);
        for d in [64, 40, 24, 16, 13, 3] {
            let rows: Vec<f32> = (0..50 * d).map(|_| r.normal() as f32).collect();
            let cols: Vec<u32> = (0..40).map(|_| r.below(50) as u32).collect();
            let w: Vec<f32> = (0..40).map(|_| r.normal() as f32).collect();
            let q = &rows[7 * d..8 * d];

            let (mut fast, mut slow) = (vec![0.5f32; d], vec![0.5f32; d]);
            weighted_sum(&mut fast, &cols, &w, &rows);
            weighted_sum_any(&mut slow, &cols, &w, &rows);
            assert_eq!(fast, slow, "weighted_sum, d = {d}");
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
