//! `exp`, `ln`, `sigmoid` and `tanh` for `f32`, written so that the compiler
//! turns a loop over them into vector instructions.
//!
//! glibc's `expf`, `tanhf` and `expm1f` are scalar calls, one element at a
//! time. These are branch-free polynomials (Cephes' minimax coefficients)
//! that a loop can compute 8 or 16 lanes at a time. They use no fused
//! multiply-add, so a value is the same bits with any instruction set:
//! [`vectorised`] picks the widest one the processor has at run time.
//!
//! Accuracy (tests): `exp` within 2 ulp of the exact value on
//! `[-87, 88]`, `ln` within 2 ulp on normal numbers; `sigmoid` and `tanh`
//! within 3e-7 absolutely, and `tanh` within 4 ulp relatively.

const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split in two: `n * LN2_HI` is exact for the `n` that occur.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5 · 2²³: adding it rounds to an integer held in the mantissa.
const ROUND: f32 = 12_582_912.0;
/// The largest and smallest arguments whose `exp` is a normal `f32`.
const EXP_MAX: f32 = 88.37;
const EXP_MIN: f32 = -87.33;

/// `e^x`, with `x` clamped to `[-87.33, 88.37]` (so never 0 or infinity).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(EXP_MIN, EXP_MAX);
    let t = x * LOG2_E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 5e-1;
    let y = p * r * r + r + 1.0;
    // The integer n sits in t's low mantissa bits; 2^n as an exponent field.
    let n_int = t.to_bits() as i32 - ROUND.to_bits() as i32;
    y * f32::from_bits(((n_int + 127) << 23) as u32)
}

/// `ln x` for positive, normal `x`.
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    let bits = x.to_bits();
    // x = m · 2^k with m in [1, 2), then m in [√½, √2) about 1.
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let big = m > std::f32::consts::SQRT_2;
    let m = if big { m * 0.5 } else { m };
    let k = ((bits >> 23) as i32 - 127 + big as i32) as f32;
    let f = m - 1.0;
    let z = f * f;
    let p = (((((((7.037_683_6e-2 * f - 1.151_461e-1) * f + 1.167_699_9e-1) * f
        - 1.242_014_1e-1)
        * f
        + 1.424_932_3e-1)
        * f
        - 1.666_805_8e-1)
        * f
        + 2.000_071_4e-1)
        * f
        - 2.499_999_4e-1)
        * f
        + 3.333_333e-1;
    let y = f * z * p + k * LN2_LO - 0.5 * z;
    f + y + k * LN2_HI
}

/// `1 / (1 + e^-x)`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh x`: an odd polynomial below 0.625, `1 - 2 / (e^2|x| + 1)` above.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    let small =
        ((((-5.704_988_7e-3 * z + 2.063_909e-2) * z - 5.373_971_6e-2) * z + 1.333_144_2e-1) * z
            - 3.333_328e-1)
            * z
            * x
            + x;
    let large = (1.0 - 2.0 / (exp(2.0 * a) + 1.0)).copysign(x);
    if a < 0.625 {
        small
    } else {
        large
    }
}

/// A loop to compile for several instruction sets: its [`Kernel::run`]
/// must be `#[inline(always)]` (and so must what it calls) for
/// [`vectorised`] to compile it into each.
pub trait Kernel {
    type Output;
    fn run(self) -> Self::Output;
}

/// Runs `kernel` compiled for the widest vector instructions the
/// processor has (AVX-512, AVX2, or the baseline). Its results do not
/// depend on the choice.
#[inline(always)]
pub fn vectorised<K: Kernel>(kernel: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512<K: Kernel>(kernel: K) -> K::Output {
            kernel.run()
        }
        #[target_feature(enable = "avx2")]
        fn avx2<K: Kernel>(kernel: K) -> K::Output {
            kernel.run()
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the processor has AVX-512F (checked just above).
            return unsafe { avx512(kernel) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the processor has AVX2 (checked just above).
            return unsafe { avx2(kernel) };
        }
    }
    kernel.run()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Units in the last place between `a` and the exact `b`.
    fn ulps(a: f32, b: f64) -> f64 {
        let b32 = b as f32;
        let ulp = (f32::from_bits(b32.abs().to_bits() + 1) - b32.abs()) as f64;
        (a as f64 - b).abs() / ulp
    }

    fn sweep(lo: f32, hi: f32, n: usize) -> impl Iterator<Item = f32> {
        (0..=n).map(move |i| lo + (hi - lo) * i as f32 / n as f32)
    }

    #[test]
    fn exp_is_within_two_ulp() {
        let worst = sweep(-87.0, 88.0, 200_000)
            .map(|x| ulps(exp(x), (x as f64).exp()))
            .fold(0.0, f64::max);
        assert!(worst <= 2.0, "worst {worst} ulp");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) > 0.0 && exp(1000.0).is_finite());
    }

    #[test]
    fn ln_is_within_two_ulp() {
        let near_one = sweep(0.5, 2.0, 100_000);
        let wide = (0..20_000).map(|i| 10f32.powf(-37.0 + 75.0 * i as f32 / 20_000.0));
        for x in near_one.chain(wide) {
            let exact = (x as f64).ln();
            let err = ulps(ln(x), exact);
            assert!(
                err <= 2.0 || (ln(x) as f64 - exact).abs() < 1e-9,
                "ln({x}): {err} ulp"
            );
        }
        assert_eq!(ln(1.0), 0.0);
    }

    #[test]
    fn sigmoid_and_tanh_match_f64() {
        for x in sweep(-30.0, 30.0, 200_000).chain(sweep(-1e-3, 1e-3, 1000)) {
            let s = 1.0 / (1.0 + (-(x as f64)).exp());
            assert!((sigmoid(x) as f64 - s).abs() < 3e-7, "sigmoid({x})");
            let t = (x as f64).tanh();
            assert!((tanh(x) as f64 - t).abs() < 3e-7, "tanh({x})");
            assert!(
                ulps(tanh(x), t) <= 4.0,
                "tanh({x}): {} ulp",
                ulps(tanh(x), t)
            );
        }
        assert_eq!(tanh(0.0), 0.0);
        assert_eq!(tanh(-50.0), -1.0);
        assert_eq!(sigmoid(-200.0).max(0.0), sigmoid(-200.0));
    }

    struct Tanh<'a>(&'a [f32]);

    impl Kernel for Tanh<'_> {
        type Output = Vec<u32>;
        #[inline(always)]
        fn run(self) -> Vec<u32> {
            self.0.iter().map(|&x| tanh(x).to_bits()).collect()
        }
    }

    #[test]
    fn every_instruction_set_gives_the_same_bits() {
        let xs: Vec<f32> = sweep(-20.0, 20.0, 4099).collect();
        let plain: Vec<u32> = xs.iter().map(|&x| tanh(x).to_bits()).collect();
        assert_eq!(plain, vectorised(Tanh(&xs)));
    }
}
