//! Seeded randomness and procedural grey textures shared by the rendered
//! datasets (the shapes benchmark, PolyMNIST's backgrounds): a SplitMix64
//! stream, platform-independent trigonometry, and value noise, stripes,
//! checks and soft blobs.

use crate::captions::splitmix64;

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// A SplitMix64 stream.
pub(crate) struct Rng(u64);

impl Rng {
    /// Stream `stream` of the sample keyed `key`.
    pub(crate) fn new(key: u64, stream: u64) -> Self {
        Rng(splitmix64(key ^ splitmix64(stream.wrapping_mul(GOLDEN))))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        splitmix64(self.0)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`, as `f32`.
    pub(crate) fn range(&mut self, lo: f64, hi: f64) -> f32 {
        (lo + (hi - lo) * self.unit()) as f32
    }

    /// Uniform in `0..n` (`n` small).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }
}

/// `(sin x, cos x)` from Taylor polynomials on `[-π/4, π/4]` (error below
/// 1e-13 for moderate `|x|`), using only exactly-rounded operations so the
/// result is the same on every platform.
pub(crate) fn sin_cos(x: f64) -> (f64, f64) {
    let q = (x * std::f64::consts::FRAC_2_PI).round();
    let r = x - q * std::f64::consts::FRAC_PI_2;
    let r2 = r * r;
    let s = r
        * (1.0
            - r2 / 6.0
                * (1.0
                    - r2 / 20.0
                        * (1.0
                            - r2 / 42.0
                                * (1.0 - r2 / 72.0 * (1.0 - r2 / 110.0 * (1.0 - r2 / 156.0))))));
    let c = 1.0
        - r2 / 2.0
            * (1.0
                - r2 / 12.0
                    * (1.0
                        - r2 / 30.0 * (1.0 - r2 / 56.0 * (1.0 - r2 / 90.0 * (1.0 - r2 / 132.0)))));
    match (q as i64).rem_euclid(4) {
        0 => (s, c),
        1 => (c, -s),
        2 => (-s, -c),
        _ => (-c, s),
    }
}

fn smoothstep(t: f32) -> f32 {
    t * t * (3.0 - 2.0 * t)
}

/// Side of the value-noise lattice (cells of at least 4 px, plus offsets).
const LATTICE: usize = 20;
const MAX_BLOBS: usize = 6;

/// The kinds of [`Texture`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextureKind {
    Noise,
    Stripes,
    Checks,
    Blobs,
}

impl TextureKind {
    pub(crate) const ALL: [TextureKind; 4] = [
        TextureKind::Noise,
        TextureKind::Stripes,
        TextureKind::Checks,
        TextureKind::Blobs,
    ];
}

/// A procedural grey texture with values in `[0, 1]`, in image coordinates.
pub(crate) enum Texture {
    /// Smooth value noise on a lattice of `1 / inv_cell` px.
    Noise {
        inv_cell: f32,
        ox: f32,
        oy: f32,
        lattice: Box<[f32; LATTICE * LATTICE]>,
    },
    /// Soft stripes: a smoothed triangle wave of `x·kx + y·ky + phase`.
    Stripes { kx: f32, ky: f32, phase: f32 },
    /// Axis-aligned checks of `1 / inv_period` px.
    Checks { inv_period: f32, ox: f32, oy: f32 },
    /// A few soft discs `(x, y, 1 / r², amplitude)` on a dark ground.
    Blobs {
        n: usize,
        blobs: [[f32; 4]; MAX_BLOBS],
    },
}

impl Texture {
    /// A random texture of a random kind; blobs lie within `spread` px of
    /// `(cx, cy)` with radii proportional to `spread`.
    pub(crate) fn random(rng: &mut Rng, cx: f32, cy: f32, spread: f32) -> Texture {
        let kind = TextureKind::ALL[rng.below(4)];
        Texture::of_kind(kind, rng, cx, cy, spread)
    }

    /// A texture of `kind`, its parameters drawn from `rng` as
    /// [`Texture::random`] draws them.
    pub(crate) fn of_kind(
        kind: TextureKind,
        rng: &mut Rng,
        cx: f32,
        cy: f32,
        spread: f32,
    ) -> Texture {
        match kind {
            TextureKind::Noise => {
                let inv_cell = 1.0 / rng.range(4.0, 9.0);
                let ox = rng.range(0.0, 1.0);
                let oy = rng.range(0.0, 1.0);
                let mut lattice = Box::new([0.0; LATTICE * LATTICE]);
                for v in lattice.iter_mut() {
                    *v = rng.unit() as f32;
                }
                Texture::Noise {
                    inv_cell,
                    ox,
                    oy,
                    lattice,
                }
            }
            TextureKind::Stripes => {
                let (s, c) = sin_cos(rng.unit() * std::f64::consts::PI);
                let period = f64::from(rng.range(4.0, 10.0));
                Texture::Stripes {
                    kx: (c / period) as f32,
                    ky: (s / period) as f32,
                    phase: rng.range(0.0, 1.0),
                }
            }
            TextureKind::Checks => {
                let period = rng.range(3.0, 8.0);
                Texture::Checks {
                    inv_period: 1.0 / period,
                    ox: rng.range(0.0, f64::from(period)),
                    oy: rng.range(0.0, f64::from(period)),
                }
            }
            TextureKind::Blobs => {
                let n = 3 + rng.below(MAX_BLOBS - 2);
                let mut blobs = [[0.0; 4]; MAX_BLOBS];
                let sp = f64::from(spread);
                for b in blobs.iter_mut().take(n) {
                    let x = cx + rng.range(-sp, sp);
                    let y = cy + rng.range(-sp, sp);
                    let r = rng.range(0.3 * sp, 0.7 * sp);
                    *b = [x, y, 1.0 / (r * r), rng.range(0.6, 1.0)];
                }
                Texture::Blobs { n, blobs }
            }
        }
    }

    /// The texture at image point `(x, y)`, in `[0, 1]`.
    #[inline]
    pub(crate) fn eval(&self, x: f32, y: f32) -> f32 {
        match self {
            Texture::Noise {
                inv_cell,
                ox,
                oy,
                lattice,
            } => {
                let gx = x * inv_cell + ox;
                let gy = y * inv_cell + oy;
                let (fx, fy) = (gx.floor(), gy.floor());
                let (ix, iy) = (fx as usize, fy as usize);
                let (tx, ty) = (smoothstep(gx - fx), smoothstep(gy - fy));
                let at = |i: usize, j: usize| lattice[j * LATTICE + i];
                let top = at(ix, iy) + (at(ix + 1, iy) - at(ix, iy)) * tx;
                let bottom = at(ix, iy + 1) + (at(ix + 1, iy + 1) - at(ix, iy + 1)) * tx;
                top + (bottom - top) * ty
            }
            Texture::Stripes { kx, ky, phase } => {
                let s = x * kx + y * ky + phase;
                smoothstep((2.0 * (s - s.floor()) - 1.0).abs())
            }
            Texture::Checks { inv_period, ox, oy } => {
                let a = ((x + ox) * inv_period).floor() as i32;
                let b = ((y + oy) * inv_period).floor() as i32;
                ((a + b) & 1) as f32
            }
            Texture::Blobs { n, blobs } => {
                let mut v = 0.0;
                for &[bx, by, inv_r2, amp] in &blobs[..*n] {
                    let d2 = ((x - bx) * (x - bx) + (y - by) * (y - by)) * inv_r2;
                    if d2 < 1.0 {
                        let w = 1.0 - d2;
                        v += amp * w * w;
                    }
                }
                v.min(1.0)
            }
        }
    }
}
