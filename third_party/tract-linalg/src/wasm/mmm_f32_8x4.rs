// classify patch: an 8x4 f32 kernel with column accumulators (see PATCHED.md).
//
// Accumulator `c{j}lo` / `c{j}hi` holds rows 0-3 / 4-7 of column j. Per k-step: A's 8 rows come as two v128
// loads, B's 4 columns as one v128 load and four lane shuffles; 8 multiply-adds. That is one shuffle per two
// multiply-adds, as in `wasm_f32_8x8`, but with a 4-wide tile: the 3-4 token inputs of classifiers fill it
// instead of 3/8 of an 8-wide one, and the 8 accumulators leave room in x86-64's 16 vector registers.
//
// Multiply then add (`madd_f32x4_nofma!`), also under relaxed-simd: Cranelift lowers `f32x4.relaxed_madd` to
// `vfmadd213ps`, which overwrites a multiplicand, so each of the 8 FMAs first copies A's vector, and the sums
// land in other registers than the loop's accumulators, moved back at every k-step (24 instructions per
// 8 products); `vmulps` + `vaddps` into the accumulator needs 16 and no moves (10% faster at 128 tokens).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use crate::Scaler;
use crate::mmm::FusedKerSpec;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
unsafe fn kernel_f32_8x4(mut pnl: *const FusedKerSpec<f32>) -> isize {
    use std::arch::wasm32::*;

    unsafe {
        let mut c0lo = f32x4_splat(0.0);
        let mut c0hi = f32x4_splat(0.0);
        let mut c1lo = f32x4_splat(0.0);
        let mut c1hi = f32x4_splat(0.0);
        let mut c2lo = f32x4_splat(0.0);
        let mut c2hi = f32x4_splat(0.0);
        let mut c3lo = f32x4_splat(0.0);
        let mut c3hi = f32x4_splat(0.0);
        while !pnl.is_null() {
            match *pnl {
                FusedKerSpec::Done => break,
                FusedKerSpec::Clear => wasm_set!(f32x4_splat(0.0); c0lo, c0hi, c1lo, c1hi, c2lo, c2hi, c3lo, c3hi),
                FusedKerSpec::LoadTile(col_major, _row_major) => {
                    wasm_load_indexed!(col_major; c0lo, c0hi, c1lo, c1hi, c2lo, c2hi, c3lo, c3hi)
                }
                FusedKerSpec::ScalarMin(a) => wasm_bin_sv!(f32x4_min, f32x4_splat(a); c0lo, c0hi, c1lo, c1hi, c2lo, c2hi, c3lo, c3hi),
                FusedKerSpec::ScalarMax(a) => wasm_bin_sv!(f32x4_max, f32x4_splat(a); c0lo, c0hi, c1lo, c1hi, c2lo, c2hi, c3lo, c3hi),
                FusedKerSpec::ScalarAdd(a) => wasm_bin_sv!(f32x4_add, f32x4_splat(a); c0lo, c0hi, c1lo, c1hi, c2lo, c2hi, c3lo, c3hi),
                FusedKerSpec::ScalarMul(a) => wasm_bin_sv!(f32x4_mul, f32x4_splat(a); c0lo, c0hi, c1lo, c1hi, c2lo, c2hi, c3lo, c3hi),
                FusedKerSpec::ScalarSub(a) => wasm_bin_sv!(f32x4_sub, f32x4_splat(a); c0lo, c0hi, c1lo, c1hi, c2lo, c2hi, c3lo, c3hi),
                FusedKerSpec::ScalarSubF(a) => wasm_bin_vs!(f32x4_sub, f32x4_splat(a); c0lo, c0hi, c1lo, c1hi, c2lo, c2hi, c3lo, c3hi),
                FusedKerSpec::LeakyRelu(a) => wasm_leaky_relu!(a; c0lo, c0hi, c1lo, c1hi, c2lo, c2hi, c3lo, c3hi),
                FusedKerSpec::PerRowMin(row) => {
                    let lo = v128_load(row as *const v128);
                    let hi = v128_load(row.add(4) as *const v128);
                    c0lo = f32x4_min(lo, c0lo);
                    c0hi = f32x4_min(hi, c0hi);
                    c1lo = f32x4_min(lo, c1lo);
                    c1hi = f32x4_min(hi, c1hi);
                    c2lo = f32x4_min(lo, c2lo);
                    c2hi = f32x4_min(hi, c2hi);
                    c3lo = f32x4_min(lo, c3lo);
                    c3hi = f32x4_min(hi, c3hi);
                }
                FusedKerSpec::PerRowMax(row) => {
                    let lo = v128_load(row as *const v128);
                    let hi = v128_load(row.add(4) as *const v128);
                    c0lo = f32x4_max(lo, c0lo);
                    c0hi = f32x4_max(hi, c0hi);
                    c1lo = f32x4_max(lo, c1lo);
                    c1hi = f32x4_max(hi, c1hi);
                    c2lo = f32x4_max(lo, c2lo);
                    c2hi = f32x4_max(hi, c2hi);
                    c3lo = f32x4_max(lo, c3lo);
                    c3hi = f32x4_max(hi, c3hi);
                }
                FusedKerSpec::PerRowAdd(row) => {
                    let lo = v128_load(row as *const v128);
                    let hi = v128_load(row.add(4) as *const v128);
                    c0lo = f32x4_add(lo, c0lo);
                    c0hi = f32x4_add(hi, c0hi);
                    c1lo = f32x4_add(lo, c1lo);
                    c1hi = f32x4_add(hi, c1hi);
                    c2lo = f32x4_add(lo, c2lo);
                    c2hi = f32x4_add(hi, c2hi);
                    c3lo = f32x4_add(lo, c3lo);
                    c3hi = f32x4_add(hi, c3hi);
                }
                FusedKerSpec::PerRowMul(row) => {
                    let lo = v128_load(row as *const v128);
                    let hi = v128_load(row.add(4) as *const v128);
                    c0lo = f32x4_mul(lo, c0lo);
                    c0hi = f32x4_mul(hi, c0hi);
                    c1lo = f32x4_mul(lo, c1lo);
                    c1hi = f32x4_mul(hi, c1hi);
                    c2lo = f32x4_mul(lo, c2lo);
                    c2hi = f32x4_mul(hi, c2hi);
                    c3lo = f32x4_mul(lo, c3lo);
                    c3hi = f32x4_mul(hi, c3hi);
                }
                FusedKerSpec::PerRowSub(row) => {
                    let lo = v128_load(row as *const v128);
                    let hi = v128_load(row.add(4) as *const v128);
                    c0lo = f32x4_sub(lo, c0lo);
                    c0hi = f32x4_sub(hi, c0hi);
                    c1lo = f32x4_sub(lo, c1lo);
                    c1hi = f32x4_sub(hi, c1hi);
                    c2lo = f32x4_sub(lo, c2lo);
                    c2hi = f32x4_sub(hi, c2hi);
                    c3lo = f32x4_sub(lo, c3lo);
                    c3hi = f32x4_sub(hi, c3hi);
                }
                FusedKerSpec::PerRowSubF(row) => {
                    let lo = v128_load(row as *const v128);
                    let hi = v128_load(row.add(4) as *const v128);
                    c0lo = f32x4_sub(c0lo, lo);
                    c0hi = f32x4_sub(c0hi, hi);
                    c1lo = f32x4_sub(c1lo, lo);
                    c1hi = f32x4_sub(c1hi, hi);
                    c2lo = f32x4_sub(c2lo, lo);
                    c2hi = f32x4_sub(c2hi, hi);
                    c3lo = f32x4_sub(c3lo, lo);
                    c3hi = f32x4_sub(c3hi, hi);
                }
                FusedKerSpec::PerColMin(cols) => {
                    let s = f32x4_splat(*cols.add(0));
                    c0lo = f32x4_min(s, c0lo);
                    c0hi = f32x4_min(s, c0hi);
                    let s = f32x4_splat(*cols.add(1));
                    c1lo = f32x4_min(s, c1lo);
                    c1hi = f32x4_min(s, c1hi);
                    let s = f32x4_splat(*cols.add(2));
                    c2lo = f32x4_min(s, c2lo);
                    c2hi = f32x4_min(s, c2hi);
                    let s = f32x4_splat(*cols.add(3));
                    c3lo = f32x4_min(s, c3lo);
                    c3hi = f32x4_min(s, c3hi);
                }
                FusedKerSpec::PerColMax(cols) => {
                    let s = f32x4_splat(*cols.add(0));
                    c0lo = f32x4_max(s, c0lo);
                    c0hi = f32x4_max(s, c0hi);
                    let s = f32x4_splat(*cols.add(1));
                    c1lo = f32x4_max(s, c1lo);
                    c1hi = f32x4_max(s, c1hi);
                    let s = f32x4_splat(*cols.add(2));
                    c2lo = f32x4_max(s, c2lo);
                    c2hi = f32x4_max(s, c2hi);
                    let s = f32x4_splat(*cols.add(3));
                    c3lo = f32x4_max(s, c3lo);
                    c3hi = f32x4_max(s, c3hi);
                }
                FusedKerSpec::PerColAdd(cols) => {
                    let s = f32x4_splat(*cols.add(0));
                    c0lo = f32x4_add(s, c0lo);
                    c0hi = f32x4_add(s, c0hi);
                    let s = f32x4_splat(*cols.add(1));
                    c1lo = f32x4_add(s, c1lo);
                    c1hi = f32x4_add(s, c1hi);
                    let s = f32x4_splat(*cols.add(2));
                    c2lo = f32x4_add(s, c2lo);
                    c2hi = f32x4_add(s, c2hi);
                    let s = f32x4_splat(*cols.add(3));
                    c3lo = f32x4_add(s, c3lo);
                    c3hi = f32x4_add(s, c3hi);
                }
                FusedKerSpec::PerColMul(cols) => {
                    let s = f32x4_splat(*cols.add(0));
                    c0lo = f32x4_mul(s, c0lo);
                    c0hi = f32x4_mul(s, c0hi);
                    let s = f32x4_splat(*cols.add(1));
                    c1lo = f32x4_mul(s, c1lo);
                    c1hi = f32x4_mul(s, c1hi);
                    let s = f32x4_splat(*cols.add(2));
                    c2lo = f32x4_mul(s, c2lo);
                    c2hi = f32x4_mul(s, c2hi);
                    let s = f32x4_splat(*cols.add(3));
                    c3lo = f32x4_mul(s, c3lo);
                    c3hi = f32x4_mul(s, c3hi);
                }
                FusedKerSpec::PerColSub(cols) => {
                    let s = f32x4_splat(*cols.add(0));
                    c0lo = f32x4_sub(s, c0lo);
                    c0hi = f32x4_sub(s, c0hi);
                    let s = f32x4_splat(*cols.add(1));
                    c1lo = f32x4_sub(s, c1lo);
                    c1hi = f32x4_sub(s, c1hi);
                    let s = f32x4_splat(*cols.add(2));
                    c2lo = f32x4_sub(s, c2lo);
                    c2hi = f32x4_sub(s, c2hi);
                    let s = f32x4_splat(*cols.add(3));
                    c3lo = f32x4_sub(s, c3lo);
                    c3hi = f32x4_sub(s, c3hi);
                }
                FusedKerSpec::PerColSubF(cols) => {
                    let s = f32x4_splat(*cols.add(0));
                    c0lo = f32x4_sub(c0lo, s);
                    c0hi = f32x4_sub(c0hi, s);
                    let s = f32x4_splat(*cols.add(1));
                    c1lo = f32x4_sub(c1lo, s);
                    c1hi = f32x4_sub(c1hi, s);
                    let s = f32x4_splat(*cols.add(2));
                    c2lo = f32x4_sub(c2lo, s);
                    c2hi = f32x4_sub(c2hi, s);
                    let s = f32x4_splat(*cols.add(3));
                    c3lo = f32x4_sub(c3lo, s);
                    c3hi = f32x4_sub(c3hi, s);
                }
                FusedKerSpec::QScale(shift, rp, mult) => wasm_bin_sv!(f32x4_mul, f32x4_splat(Scaler::from_fuse_params(shift, rp, mult).scale); c0lo, c0hi, c1lo, c1hi, c2lo, c2hi, c3lo, c3hi),
                FusedKerSpec::RoundingShiftRight(shift, _rp) => wasm_bin_sv!(f32x4_mul, f32x4_splat(2f32.powi(-(shift as i32))); c0lo, c0hi, c1lo, c1hi, c2lo, c2hi, c3lo, c3hi),
                FusedKerSpec::ShiftLeft(shift) => wasm_bin_sv!(f32x4_mul, f32x4_splat(2f32.powi(shift as i32)); c0lo, c0hi, c1lo, c1hi, c2lo, c2hi, c3lo, c3hi),
                FusedKerSpec::AddUnicast(tile) => {
                    let at = |row: isize, col: isize| {
                        *(tile.ptr.offset(row * tile.row_byte_stride + col * tile.col_byte_stride) as *const f32)
                    };
                    c0lo = f32x4_add(c0lo, f32x4(at(0, 0), at(1, 0), at(2, 0), at(3, 0)));
                    c0hi = f32x4_add(c0hi, f32x4(at(4, 0), at(5, 0), at(6, 0), at(7, 0)));
                    c1lo = f32x4_add(c1lo, f32x4(at(0, 1), at(1, 1), at(2, 1), at(3, 1)));
                    c1hi = f32x4_add(c1hi, f32x4(at(4, 1), at(5, 1), at(6, 1), at(7, 1)));
                    c2lo = f32x4_add(c2lo, f32x4(at(0, 2), at(1, 2), at(2, 2), at(3, 2)));
                    c2hi = f32x4_add(c2hi, f32x4(at(4, 2), at(5, 2), at(6, 2), at(7, 2)));
                    c3lo = f32x4_add(c3lo, f32x4(at(0, 3), at(1, 3), at(2, 3), at(3, 3)));
                    c3hi = f32x4_add(c3hi, f32x4(at(4, 3), at(5, 3), at(6, 3), at(7, 3)));
                }
                FusedKerSpec::AddRowColProducts(rows, cols) => {
                    let lo = v128_load(rows as *const v128);
                    let hi = v128_load(rows.add(4) as *const v128);
                    let s = f32x4_splat(*cols.add(0));
                    c0lo = madd_f32x4_nofma!(c0lo, lo, s);
                    c0hi = madd_f32x4_nofma!(c0hi, hi, s);
                    let s = f32x4_splat(*cols.add(1));
                    c1lo = madd_f32x4_nofma!(c1lo, lo, s);
                    c1hi = madd_f32x4_nofma!(c1hi, hi, s);
                    let s = f32x4_splat(*cols.add(2));
                    c2lo = madd_f32x4_nofma!(c2lo, lo, s);
                    c2hi = madd_f32x4_nofma!(c2hi, hi, s);
                    let s = f32x4_splat(*cols.add(3));
                    c3lo = madd_f32x4_nofma!(c3lo, lo, s);
                    c3hi = madd_f32x4_nofma!(c3hi, hi, s);
                }
                FusedKerSpec::Store(tile) => {
                    let at = |row: isize, col: isize| {
                        tile.ptr.offset(row * tile.row_byte_stride + col * tile.col_byte_stride) as *mut f32
                    };
                    *at(0, 0) = f32x4_extract_lane::<0>(c0lo);
                    *at(1, 0) = f32x4_extract_lane::<1>(c0lo);
                    *at(2, 0) = f32x4_extract_lane::<2>(c0lo);
                    *at(3, 0) = f32x4_extract_lane::<3>(c0lo);
                    *at(4, 0) = f32x4_extract_lane::<0>(c0hi);
                    *at(5, 0) = f32x4_extract_lane::<1>(c0hi);
                    *at(6, 0) = f32x4_extract_lane::<2>(c0hi);
                    *at(7, 0) = f32x4_extract_lane::<3>(c0hi);
                    *at(0, 1) = f32x4_extract_lane::<0>(c1lo);
                    *at(1, 1) = f32x4_extract_lane::<1>(c1lo);
                    *at(2, 1) = f32x4_extract_lane::<2>(c1lo);
                    *at(3, 1) = f32x4_extract_lane::<3>(c1lo);
                    *at(4, 1) = f32x4_extract_lane::<0>(c1hi);
                    *at(5, 1) = f32x4_extract_lane::<1>(c1hi);
                    *at(6, 1) = f32x4_extract_lane::<2>(c1hi);
                    *at(7, 1) = f32x4_extract_lane::<3>(c1hi);
                    *at(0, 2) = f32x4_extract_lane::<0>(c2lo);
                    *at(1, 2) = f32x4_extract_lane::<1>(c2lo);
                    *at(2, 2) = f32x4_extract_lane::<2>(c2lo);
                    *at(3, 2) = f32x4_extract_lane::<3>(c2lo);
                    *at(4, 2) = f32x4_extract_lane::<0>(c2hi);
                    *at(5, 2) = f32x4_extract_lane::<1>(c2hi);
                    *at(6, 2) = f32x4_extract_lane::<2>(c2hi);
                    *at(7, 2) = f32x4_extract_lane::<3>(c2hi);
                    *at(0, 3) = f32x4_extract_lane::<0>(c3lo);
                    *at(1, 3) = f32x4_extract_lane::<1>(c3lo);
                    *at(2, 3) = f32x4_extract_lane::<2>(c3lo);
                    *at(3, 3) = f32x4_extract_lane::<3>(c3lo);
                    *at(4, 3) = f32x4_extract_lane::<0>(c3hi);
                    *at(5, 3) = f32x4_extract_lane::<1>(c3hi);
                    *at(6, 3) = f32x4_extract_lane::<2>(c3hi);
                    *at(7, 3) = f32x4_extract_lane::<3>(c3hi);
                }
                FusedKerSpec::AddMatMul { k, pa, pb, packing: _ } => {
                    // A: packed [k][MR = 8]; B: packed [k][NR = 4].
                    let a = pa as *const v128;
                    let b = pb as *const v128;
                    for i in 0..k {
                        let lo = v128_load(a.add(2 * i));
                        let hi = v128_load(a.add(2 * i + 1));
                        let bv = v128_load(b.add(i));
                        let s0 = i32x4_shuffle::<0, 0, 0, 0>(bv, bv);
                        let s1 = i32x4_shuffle::<1, 1, 1, 1>(bv, bv);
                        let s2 = i32x4_shuffle::<2, 2, 2, 2>(bv, bv);
                        let s3 = i32x4_shuffle::<3, 3, 3, 3>(bv, bv);
                        c0lo = madd_f32x4_nofma!(c0lo, lo, s0);
                        c0hi = madd_f32x4_nofma!(c0hi, hi, s0);
                        c1lo = madd_f32x4_nofma!(c1lo, lo, s1);
                        c1hi = madd_f32x4_nofma!(c1hi, hi, s1);
                        c2lo = madd_f32x4_nofma!(c2lo, lo, s2);
                        c2hi = madd_f32x4_nofma!(c2hi, hi, s2);
                        c3lo = madd_f32x4_nofma!(c3lo, lo, s3);
                        c3hi = madd_f32x4_nofma!(c3hi, hi, s3);
                    }
                }
            }
            pnl = pnl.add(1);
        }
        0
    }
}

bail_stub!(wasm32; unsafe fn kernel_f32_8x4(*const FusedKerSpec<f32>) -> isize);

MMMRustKernel!(wasm32; kernel_f32_8x4 => wasm_f32_8x4<f32>(8,4)@(8,4));
