//! Procedural dual-energy scans of containers with ground truth, for training and evaluation.
//!
//! Physics: each pixel is a ray across the container's width. Objects add mass thickness
//! (g/cm², density × path length) per material class; the expected detector count in band `E`
//! is Beer-Lambert, `I = I0 · exp(-Σ_k (μ/ρ)_k(E) · m_k)`, with μ/ρ from
//! [`super::materials`]. The count is then drawn from a Poisson distribution (quantum noise;
//! a normal approximation above 100 counts, where the two agree to well under a count).
//!
//! Geometry: a 20-foot container interior (590 × 239 × 235 cm) at 10 mm per pixel by default.
//! Goods are stacked from the floor in columns of cartons, bales or crates per the manifest
//! category; hidden items displace the goods they sit in (a smuggler removes cargo to make room).
//! Objects are axis-aligned boxes, ellipsoids (thickness `t·sqrt(1 - u² - v²)`) or compositions
//! of boxes (firearms).

use super::materials::Material;
use super::{Category, Manifest, Scan, ScanMeta, TileClass, XrayError, TILE_SIZE};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal, Poisson};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Interior width of the container crossed by the beam, cm.
const CONTAINER_DEPTH_CM: f64 = 235.0;
/// Below this mean mass thickness (g/cm²) a tile counts as clear (packaging, dunnage).
const CLEAR_MASS_G_CM2: f64 = 6.0;

/// Kinds of concealed items the generator can hide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenKind {
    /// Master cases of cigarette cartons.
    Cigarettes,
    /// Compressed drug bricks.
    Drugs,
    /// One to three firearms.
    Weapon,
    /// A solid steel block (undeclared metal in declared soft goods).
    MetalBlock,
}

impl HiddenKind {
    pub const ALL: [HiddenKind; 4] = [
        HiddenKind::Cigarettes,
        HiddenKind::Drugs,
        HiddenKind::Weapon,
        HiddenKind::MetalBlock,
    ];

    /// The tile class a tile showing this item should get.
    pub fn tile_class(self) -> TileClass {
        match self {
            HiddenKind::Cigarettes => TileClass::Cigarettes,
            HiddenKind::Drugs => TileClass::Drugs,
            HiddenKind::Weapon => TileClass::Weapon,
            HiddenKind::MetalBlock => TileClass::Metal,
        }
    }
}

/// A pixel rectangle, `x0..x1` × `y0..y1` (exclusive ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PixelBox {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

/// One concealed item in the ground truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HiddenItem {
    pub kind: HiddenKind,
    /// Bounding box in the image.
    pub bbox: PixelBox,
    /// Mass of the item, kg.
    pub mass_kg: f64,
}

/// What the generator put in the container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    pub seed: u64,
    pub category: Category,
    pub hidden: Vec<HiddenItem>,
    /// Net mass of the declared goods actually present (after displacement), kg.
    pub goods_weight_kg: f64,
    /// Mass of everything inside (goods and hidden items), kg.
    pub total_weight_kg: f64,
    pub tile_size: u32,
    pub tiles_x: u32,
    pub tiles_y: u32,
    /// One label per tile, row-major.
    pub tile_labels: Vec<TileClass>,
}

/// Parameters of one generated scan.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorConfig {
    pub seed: u64,
    pub category: Category,
    /// Items to conceal; empty for a clean container.
    pub hidden: Vec<HiddenKind>,
    /// Fraction of the container length loaded with goods (0..1].
    pub load_factor: f64,
    /// Declared weight = true goods weight × this factor (1.0 = honest declaration; the
    /// generator adds a ±3% declaration tolerance on top).
    pub declared_weight_factor: f64,
    pub width: u32,
    pub height: u32,
    pub meta: ScanMeta,
}

impl GeneratorConfig {
    /// A clean, honestly declared 20-foot container of `category` at 10 mm per pixel.
    pub fn new(seed: u64, category: Category) -> Self {
        GeneratorConfig {
            seed,
            category,
            hidden: Vec::new(),
            load_factor: 0.85,
            declared_weight_factor: 1.0,
            width: 592,
            height: 240,
            meta: ScanMeta {
                scanner_id: "generated".into(),
                pixel_pitch_mm: 10.0,
                high_energy_mev: 3.0,
                low_energy_mev: 1.0,
                air_value_high: 60_000,
                air_value_low: 60_000,
                wall_steel_mm: 4.0,
            },
        }
    }

    /// A random container for datasets: random category and load, and with probability
    /// `p_hidden` one or two concealed items.
    pub fn random(seed: u64, p_hidden: f64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
        let category = Category::ALL[rng.random_range(0..Category::ALL.len())];
        let mut config = GeneratorConfig::new(seed, category);
        config.load_factor = rng.random_range(0.45..1.0);
        if rng.random_bool(p_hidden.clamp(0.0, 1.0)) {
            let count = rng.random_range(1..=2);
            for _ in 0..count {
                config
                    .hidden
                    .push(HiddenKind::ALL[rng.random_range(0..HiddenKind::ALL.len())]);
            }
        }
        config
    }

    pub fn with_hidden(mut self, hidden: Vec<HiddenKind>) -> Self {
        self.hidden = hidden;
        self
    }
}

/// A generated scan with its manifest and ground truth.
#[derive(Debug, Clone)]
pub struct GeneratedScan {
    pub scan: Scan,
    pub manifest: Manifest,
    pub truth: GroundTruth,
}

impl GeneratedScan {
    /// Writes `high.png`, `low.png`, `scanner.json`, `manifest.json` and `truth.json` into
    /// `dir` (created if missing).
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<(), XrayError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| XrayError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        self.scan.save(
            dir.join("high.png"),
            dir.join("low.png"),
            dir.join("scanner.json"),
        )?;
        self.manifest.save(dir.join("manifest.json"))?;
        super::scan::write_json(&dir.join("truth.json"), &self.truth)
    }
}

/// Per-pixel mass thickness (g/cm²) per material class, plus which hidden item owns a pixel.
struct Phantom {
    width: usize,
    height: usize,
    cm_per_px: f64,
    mass: [Vec<f64>; 3],
    hidden_owner: Vec<u16>,
}

#[derive(Clone, Copy)]
enum Profile {
    Box,
    Ellipsoid,
}

impl Phantom {
    fn new(width: usize, height: usize, cm_per_px: f64) -> Self {
        let n = width * height;
        Phantom {
            width,
            height,
            cm_per_px,
            mass: [vec![0.0; n], vec![0.0; n], vec![0.0; n]],
            hidden_owner: vec![0; n],
        }
    }

    /// Pixel rectangle of an object given in cm (x from the container's door end, y from the
    /// floor up), clipped to the image.
    fn rect(
        &self,
        x_cm: f64,
        y_cm: f64,
        w_cm: f64,
        h_cm: f64,
    ) -> Option<(usize, usize, usize, usize)> {
        let px = |cm: f64| (cm / self.cm_per_px).round().max(0.0) as usize;
        let x0 = px(x_cm).min(self.width);
        let x1 = px(x_cm + w_cm).min(self.width);
        // Rows grow downwards; the floor is the last row.
        let top = px(y_cm + h_cm).min(self.height);
        let bottom = px(y_cm).min(self.height);
        let (y0, y1) = (self.height - top, self.height - bottom);
        (x1 > x0 && y1 > y0).then_some((x0, y0, x1, y1))
    }

    /// Adds an object; `density_at(x, y)` lets an object carry internal structure (a factor on
    /// its density per pixel). Returns the mass added, g per cm² of pixel area summed.
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        rect: (usize, usize, usize, usize),
        material: Material,
        density: f64,
        thickness_cm: f64,
        profile: Profile,
        owner: u16,
        density_at: &dyn Fn(usize, usize) -> f64,
    ) -> f64 {
        let (x0, y0, x1, y1) = rect;
        let (cx, cy) = ((x0 + x1) as f64 / 2.0, (y0 + y1) as f64 / 2.0);
        let (rx, ry) = ((x1 - x0) as f64 / 2.0, (y1 - y0) as f64 / 2.0);
        let mut added = 0.0;
        for y in y0..y1 {
            for x in x0..x1 {
                let path = match profile {
                    Profile::Box => thickness_cm,
                    Profile::Ellipsoid => {
                        let u = (x as f64 + 0.5 - cx) / rx;
                        let v = (y as f64 + 0.5 - cy) / ry;
                        thickness_cm * (1.0 - u * u - v * v).max(0.0).sqrt()
                    }
                };
                let m = density * density_at(x - x0, y - y0) * path;
                if m <= 0.0 {
                    continue;
                }
                let i = y * self.width + x;
                self.mass[material.index()][i] += m;
                if owner > 0 {
                    self.hidden_owner[i] = owner;
                }
                added += m;
            }
        }
        added
    }

    /// Removes goods mass along a hidden item's footprint: the item displaces what was there.
    fn displace(
        &mut self,
        rect: (usize, usize, usize, usize),
        thickness_cm: f64,
        goods_density: f64,
    ) {
        let (x0, y0, x1, y1) = rect;
        for y in y0..y1 {
            for x in x0..x1 {
                let i = y * self.width + x;
                for m in self.mass.iter_mut() {
                    // Remove proportionally from every class present, never below zero.
                    let take = (goods_density * thickness_cm).min(m[i]);
                    m[i] -= take;
                }
            }
        }
    }

    fn total_mass_g(&self) -> f64 {
        let area = self.cm_per_px * self.cm_per_px;
        self.mass.iter().flatten().sum::<f64>() * area
    }
}

/// Generates one scan. Deterministic for a given config.
pub fn generate(config: &GeneratorConfig) -> Result<GeneratedScan, XrayError> {
    config.meta.validate()?;
    if !(config.load_factor > 0.0 && config.load_factor <= 1.0) {
        return Err(XrayError::Invalid {
            what: "generator config",
            message: format!("load_factor must be in (0, 1], got {}", config.load_factor),
        });
    }
    if !(config.declared_weight_factor.is_finite() && config.declared_weight_factor >= 0.0) {
        return Err(XrayError::Invalid {
            what: "generator config",
            message: "declared_weight_factor must be zero or positive".into(),
        });
    }
    let tile = TILE_SIZE as u32;
    if config.width < tile || config.height < tile {
        return Err(XrayError::TooSmall {
            width: config.width,
            height: config.height,
            tile,
        });
    }
    let mut rng = StdRng::seed_from_u64(config.seed);
    let cm_per_px = config.meta.pixel_pitch_mm / 10.0;
    let (width, height) = (config.width as usize, config.height as usize);
    let mut phantom = Phantom::new(width, height, cm_per_px);
    let length_cm = width as f64 * cm_per_px;
    let height_cm = height as f64 * cm_per_px;

    let stacks = load_goods(
        &mut phantom,
        &mut rng,
        config.category,
        config.load_factor,
        length_cm,
        height_cm,
    );
    let goods_density = recipe(config.category).density_mid();

    let mut hidden = Vec::new();
    let mut hidden_mass_g = 0.0;
    for (n, &kind) in config.hidden.iter().enumerate() {
        let owner = (n + 1) as u16;
        let item = hide(
            &mut phantom,
            &mut rng,
            kind,
            owner,
            &stacks,
            goods_density,
            length_cm,
        )?;
        hidden_mass_g += item.mass_kg * 1000.0;
        hidden.push(item);
    }

    let total_g = phantom.total_mass_g();
    let goods_weight_kg = (total_g - hidden_mass_g).max(0.0) / 1000.0;
    let (high, low) = expose(&phantom, &config.meta, &mut rng)?;
    let scan = Scan::new(config.meta.clone(), config.width, config.height, high, low)?;
    let declared =
        goods_weight_kg * config.declared_weight_factor * (1.0 + rng.random_range(-0.03..0.03));
    let manifest = Manifest {
        container_id: format!("MZGU{:07}", config.seed % 10_000_000),
        category: config.category,
        declared_weight_kg: (declared * 10.0).round() / 10.0,
    };
    let (tiles_x, tiles_y, tile_labels) =
        label_tiles(&phantom, &config.meta, &hidden, &config.hidden);
    Ok(GeneratedScan {
        scan,
        manifest,
        truth: GroundTruth {
            seed: config.seed,
            category: config.category,
            hidden,
            goods_weight_kg,
            total_weight_kg: total_g / 1000.0,
            tile_size: tile,
            tiles_x,
            tiles_y,
            tile_labels,
        },
    })
}

/// How one category's goods are packed.
struct Recipe {
    material: Material,
    /// Bulk density range of a carton/bale/crate, g/cm³.
    density: (f64, f64),
    /// Package width and height range, cm.
    size: (f64, f64),
    /// Items per package of another material: (material, solid fraction of thickness range).
    inserts: Option<(Material, (f64, f64))>,
}

impl Recipe {
    fn density_mid(&self) -> f64 {
        (self.density.0 + self.density.1) / 2.0
    }
}

fn recipe(category: Category) -> Recipe {
    match category {
        // Compressed clothing bales.
        Category::Textiles => Recipe {
            material: Material::Organic,
            density: (0.15, 0.35),
            size: (40.0, 90.0),
            inserts: None,
        },
        // Cartons of packaged food and drink.
        Category::Food => Recipe {
            material: Material::Organic,
            density: (0.35, 0.7),
            size: (25.0, 50.0),
            inserts: None,
        },
        // Crates of tiles and sanitary ware with packing.
        Category::Ceramics => Recipe {
            material: Material::Inorganic,
            density: (0.35, 0.8),
            size: (50.0, 110.0),
            inserts: None,
        },
        // Steel parts in light wooden crates.
        Category::Machinery => Recipe {
            material: Material::Organic,
            density: (0.05, 0.12),
            size: (60.0, 120.0),
            inserts: Some((Material::Steel, (3.0, 18.0))),
        },
        // Appliances: plastic and cardboard around aluminium chassis and steel parts.
        Category::Electronics => Recipe {
            material: Material::Organic,
            density: (0.1, 0.2),
            size: (40.0, 80.0),
            inserts: Some((Material::Inorganic, (5.0, 30.0))),
        },
    }
}

/// A stack of packages standing on the floor: x range and height, cm.
#[derive(Clone, Copy)]
struct Stack {
    x_cm: f64,
    w_cm: f64,
    h_cm: f64,
}

fn load_goods(
    phantom: &mut Phantom,
    rng: &mut StdRng,
    category: Category,
    load_factor: f64,
    length_cm: f64,
    height_cm: f64,
) -> Vec<Stack> {
    let recipe = recipe(category);
    let mut stacks = Vec::new();
    let loaded_cm = length_cm * load_factor;
    let mut x = rng.random_range(0.0..4.0);
    while x < loaded_cm - 20.0 {
        let w = rng
            .random_range(recipe.size.0..recipe.size.1)
            .min(loaded_cm - x);
        // Pallet: softwood, 15 cm high, across most of the width.
        let pallet_depth = CONTAINER_DEPTH_CM * rng.random_range(0.8..0.95);
        if let Some(r) = phantom.rect(x, 0.0, w, 15.0) {
            phantom.add(
                r,
                Material::Organic,
                0.25,
                pallet_depth,
                Profile::Box,
                0,
                &|_, _| 1.0,
            );
        }
        let stack_top = height_cm * rng.random_range(0.5..0.97);
        let mut y = 15.0;
        while y < stack_top - 10.0 {
            let h = rng
                .random_range(recipe.size.0 * 0.5..recipe.size.1 * 0.7)
                .min(stack_top - y);
            let density = rng.random_range(recipe.density.0..recipe.density.1);
            // Packages fill part of the container's width; the rest is air.
            let depth = CONTAINER_DEPTH_CM * rng.random_range(0.6..0.95);
            // 1 cm gaps between packages make the edges visible, as in real stacks.
            if let Some(r) = phantom.rect(x + 0.5, y + 0.5, w - 1.0, h - 1.0) {
                let grain = rng.random_range(0.0..0.12);
                let phase = rng.random_range(0.0..std::f64::consts::TAU);
                phantom.add(
                    r,
                    recipe.material,
                    density,
                    depth,
                    Profile::Box,
                    0,
                    &|px, py| {
                        1.0 + grain * ((px as f64 * 0.31 + phase).sin() * (py as f64 * 0.23).cos())
                    },
                );
                if let Some((insert, (t0, t1))) = recipe.inserts {
                    add_inserts(phantom, rng, insert, (t0, t1), x, y, w, h);
                }
            }
            y += h;
        }
        stacks.push(Stack {
            x_cm: x,
            w_cm: w,
            h_cm: y,
        });
        x += w + rng.random_range(0.0..3.0);
    }
    stacks
}

/// Solid parts inside a package: engine parts and shafts (steel) or chassis (aluminium),
/// plus small steel parts in electronics (motors, transformers).
#[allow(clippy::too_many_arguments)]
fn add_inserts(
    phantom: &mut Phantom,
    rng: &mut StdRng,
    material: Material,
    thickness: (f64, f64),
    x: f64,
    y: f64,
    w: f64,
    h: f64,
) {
    let count = rng.random_range(1..=3);
    for _ in 0..count {
        let pw = rng.random_range(0.3..0.8) * w;
        let ph = rng.random_range(0.3..0.8) * h;
        let px = x + rng.random_range(0.0..(w - pw).max(0.1));
        let py = y + rng.random_range(0.0..(h - ph).max(0.1));
        let profile = if rng.random_bool(0.5) {
            Profile::Box
        } else {
            Profile::Ellipsoid
        };
        if let Some(r) = phantom.rect(px, py, pw, ph) {
            let t = rng.random_range(thickness.0..thickness.1);
            phantom.add(
                r,
                material,
                material.solid_density(),
                t,
                profile,
                0,
                &|_, _| 1.0,
            );
        }
        if material == Material::Inorganic && rng.random_bool(0.5) {
            let s = rng.random_range(6.0..14.0);
            if let Some(r) = phantom.rect(px + pw / 3.0, py + ph / 3.0, s, s) {
                let t = rng.random_range(3.0..8.0);
                phantom.add(
                    r,
                    Material::Steel,
                    Material::Steel.solid_density(),
                    t,
                    Profile::Box,
                    0,
                    &|_, _| 1.0,
                );
            }
        }
    }
}

/// Conceals one item inside a random stack of goods.
fn hide(
    phantom: &mut Phantom,
    rng: &mut StdRng,
    kind: HiddenKind,
    owner: u16,
    stacks: &[Stack],
    goods_density: f64,
    length_cm: f64,
) -> Result<HiddenItem, XrayError> {
    // Sizes (cm): face width and height, thickness along the beam.
    let (w, h, t): (f64, f64, f64) = match kind {
        HiddenKind::Cigarettes => (
            rng.random_range(50.0..110.0),
            rng.random_range(35.0..70.0),
            rng.random_range(40.0..100.0),
        ),
        HiddenKind::Drugs => (
            rng.random_range(30.0..60.0),
            rng.random_range(20.0..45.0),
            rng.random_range(15.0..45.0),
        ),
        HiddenKind::Weapon => (
            rng.random_range(20.0..90.0),
            rng.random_range(14.0..20.0),
            3.0,
        ),
        HiddenKind::MetalBlock => (
            rng.random_range(15.0..40.0),
            rng.random_range(15.0..40.0),
            rng.random_range(10.0..30.0),
        ),
    };
    let stack = match stacks
        .iter()
        .filter(|s| s.w_cm >= w.min(40.0) && s.h_cm > h + 20.0)
        .count()
    {
        0 => None,
        n => stacks
            .iter()
            .filter(|s| s.w_cm >= w.min(40.0) && s.h_cm > h + 20.0)
            .nth(rng.random_range(0..n)),
    };
    // An empty or nearly empty container still gets its item, on the floor.
    let (x, y) = match stack {
        Some(s) => (
            s.x_cm + rng.random_range(0.0..(s.w_cm - w).max(0.1)),
            rng.random_range(15.0..(s.h_cm - h).max(15.1)),
        ),
        None => (rng.random_range(0.0..(length_cm - w).max(0.1)), 15.0),
    };
    let rect = phantom.rect(x, y, w, h).ok_or_else(|| XrayError::Invalid {
        what: "generator config",
        message: "image too small to place a hidden item".into(),
    })?;
    let mass_g = match kind {
        HiddenKind::Cigarettes => {
            phantom.displace(rect, t, goods_density);
            // Cartons 5.5 cm thick and 9 cm tall, stacked in register: 1 cm of air between
            // cartons shows as a regular grid, the signature officers look for.
            let cm = phantom.cm_per_px;
            let density = rng.random_range(0.22..0.3);
            phantom.add(
                rect,
                Material::Organic,
                density,
                t,
                Profile::Box,
                owner,
                &move |px, py| {
                    let (xc, yc) = (px as f64 * cm, py as f64 * cm);
                    let gap_x = (xc % 5.5) < 1.0;
                    let gap_y = (yc % 9.0) < 1.0;
                    if gap_x || gap_y {
                        0.45
                    } else {
                        1.0
                    }
                },
            ) + phantom.add(
                rect,
                Material::Inorganic,
                2.7,
                t * 0.0006,
                Profile::Box,
                owner,
                &|_, _| 1.0,
            )
        }
        HiddenKind::Drugs => {
            phantom.displace(rect, t, goods_density);
            let density = rng.random_range(1.0..1.3);
            // Bricks of about 1 kg (20 × 12 cm faces), taped: seams between bricks.
            let cm = phantom.cm_per_px;
            phantom.add(
                rect,
                Material::Organic,
                density,
                t,
                Profile::Ellipsoid,
                owner,
                &move |px, py| {
                    let seam = (px as f64 * cm) % 20.0 < 0.8 || (py as f64 * cm) % 12.0 < 0.8;
                    if seam {
                        0.8
                    } else {
                        1.0
                    }
                },
            )
        }
        HiddenKind::Weapon => {
            let count = rng.random_range(1..=3);
            let mut mass = 0.0;
            let (x0, y0, x1, y1) = rect;
            let lane = ((y1 - y0) / count).max(1);
            for k in 0..count {
                let top = y0 + k * lane;
                mass += add_firearm(phantom, rng, (x0, top, x1, (top + lane).min(y1)), owner);
            }
            mass
        }
        HiddenKind::MetalBlock => {
            phantom.displace(rect, t, goods_density);
            phantom.add(
                rect,
                Material::Steel,
                Material::Steel.solid_density(),
                t,
                Profile::Box,
                owner,
                &|_, _| 1.0,
            )
        }
    };
    let area = phantom.cm_per_px * phantom.cm_per_px;
    Ok(HiddenItem {
        kind,
        bbox: PixelBox {
            x0: rect.0 as u32,
            y0: rect.1 as u32,
            x1: rect.2 as u32,
            y1: rect.3 as u32,
        },
        mass_kg: mass_g * area / 1000.0,
    })
}

/// A pistol (short slide, grip) or a rifle (long barrel, receiver, wooden stock), in steel,
/// side-on, drawn inside `lane`. Returns mass in g per cm² of pixel area summed.
fn add_firearm(
    phantom: &mut Phantom,
    rng: &mut StdRng,
    lane: (usize, usize, usize, usize),
    owner: u16,
) -> f64 {
    let (x0, y0, x1, y1) = lane;
    let px_per_cm = 1.0 / phantom.cm_per_px;
    let cm = |v: f64| ((v * px_per_cm).round() as usize).max(1);
    let width = x1 - x0;
    let mut mass = 0.0;
    let steel = Material::Steel;
    let rho = steel.solid_density();
    let mut put = |phantom: &mut Phantom,
                   x: usize,
                   y: usize,
                   w: usize,
                   h: usize,
                   m: Material,
                   d: f64,
                   t: f64| {
        let (xa, ya) = (x.min(x1), y.min(y1));
        let (xb, yb) = ((x + w).min(x1), (y + h).min(y1));
        if xb > xa && yb > ya {
            mass += phantom.add((xa, ya, xb, yb), m, d, t, Profile::Box, owner, &|_, _| 1.0);
        }
    };
    if width >= cm(60.0) {
        // Rifle: barrel 2.5 cm, receiver 20 × 6 cm, stock 25 × 8 cm (wood).
        let barrel_len = (width as f64 * 0.55) as usize;
        put(phantom, x0, y0, barrel_len, cm(2.5), steel, rho, 1.8);
        put(
            phantom,
            x0 + barrel_len,
            y0,
            cm(20.0),
            cm(6.0),
            steel,
            rho,
            3.5,
        );
        let stock_x = x0 + barrel_len + cm(20.0);
        put(
            phantom,
            stock_x,
            y0,
            x1.saturating_sub(stock_x),
            cm(8.0),
            Material::Organic,
            0.7,
            4.0,
        );
        put(
            phantom,
            x0 + barrel_len + cm(5.0),
            y0 + cm(6.0),
            cm(3.0),
            cm(8.0),
            steel,
            rho,
            2.5,
        );
    } else {
        // Pistol: slide 18 × 3.5 cm, grip 3 × 11 cm behind, frame 2.5 cm thick.
        let slide = cm(rng.random_range(16.0..20.0)).min(width);
        put(phantom, x0, y0, slide, cm(3.5), steel, rho, 2.5);
        put(
            phantom,
            x0 + slide.saturating_sub(cm(4.0)),
            y0 + cm(3.5),
            cm(3.0),
            cm(11.0),
            steel,
            rho,
            2.8,
        );
        put(
            phantom,
            x0 + slide / 2,
            y0 + cm(3.5),
            cm(4.0),
            cm(3.0),
            steel,
            rho,
            0.6,
        );
    }
    mass
}

/// Beer-Lambert in both bands with Poisson counting noise.
fn expose(
    phantom: &Phantom,
    meta: &ScanMeta,
    rng: &mut StdRng,
) -> Result<(Vec<u16>, Vec<u16>), XrayError> {
    let mu = |energy: f64| -> Result<[f64; 3], XrayError> {
        let mut out = [0.0; 3];
        for m in Material::ALL {
            out[m.index()] = m
                .mass_attenuation(energy)
                .ok_or_else(|| XrayError::Invalid {
                    what: "scanner metadata",
                    message: format!("energy {energy} MeV is outside the tabulated 0.1-6 MeV"),
                })?;
        }
        Ok(out)
    };
    let wall = meta.wall_steel_mm / 10.0 * Material::Steel.solid_density();
    let band = |energy: f64, air: u16, rng: &mut StdRng| -> Result<Vec<u16>, XrayError> {
        let mu = mu(energy)?;
        let n = phantom.width * phantom.height;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let attenuation = mu[2] * wall
                + mu[0] * phantom.mass[0][i]
                + mu[1] * phantom.mass[1][i]
                + mu[2] * phantom.mass[2][i];
            let expected = f64::from(air) * (-attenuation).exp();
            out.push(count(expected, rng));
        }
        Ok(out)
    };
    let high = band(meta.high_energy_mev, meta.air_value_high, rng)?;
    let low = band(meta.low_energy_mev, meta.air_value_low, rng)?;
    Ok((high, low))
}

fn count(expected: f64, rng: &mut StdRng) -> u16 {
    let sample = if expected > 100.0 {
        // Normal approximation: exact Poisson sampling at 60 000 counts is slow and
        // indistinguishable at this level.
        Normal::new(expected, expected.sqrt())
            .map(|d| d.sample(rng))
            .unwrap_or(expected)
    } else if expected > 0.0 {
        Poisson::new(expected)
            .map(|d| d.sample(rng))
            .unwrap_or(expected)
    } else {
        0.0
    };
    sample.round().clamp(0.0, f64::from(u16::MAX)) as u16
}

/// Labels each tile: a hidden item's class if it covers a fifth of the tile or most of the
/// item lies in it; otherwise clear below [`CLEAR_MASS_G_CM2`], else the material class that
/// attenuates most in the high band.
fn label_tiles(
    phantom: &Phantom,
    meta: &ScanMeta,
    hidden: &[HiddenItem],
    kinds: &[HiddenKind],
) -> (u32, u32, Vec<TileClass>) {
    let tile = TILE_SIZE;
    let (tx, ty) = (phantom.width / tile, phantom.height / tile);
    let mut item_pixels = vec![0usize; hidden.len() + 1];
    for &o in &phantom.hidden_owner {
        item_pixels[o as usize] += 1;
    }
    let mu: Vec<f64> = Material::ALL
        .iter()
        .map(|m| m.mass_attenuation(meta.high_energy_mev).unwrap_or(0.04))
        .collect();
    let mut labels = Vec::with_capacity(tx * ty);
    for j in 0..ty {
        for i in 0..tx {
            let mut owned = vec![0usize; hidden.len() + 1];
            let mut sums = [0.0f64; 3];
            for y in j * tile..(j + 1) * tile {
                for x in i * tile..(i + 1) * tile {
                    let p = y * phantom.width + x;
                    owned[phantom.hidden_owner[p] as usize] += 1;
                    for (k, sum) in sums.iter_mut().enumerate() {
                        *sum += phantom.mass[k][p];
                    }
                }
            }
            let area = (tile * tile) as f64;
            let hidden_label = (1..owned.len())
                .filter(|&k| {
                    owned[k] > 0
                        && (owned[k] as f64 >= 0.2 * area
                            || owned[k] as f64 >= 0.5 * item_pixels[k] as f64)
                })
                .max_by_key(|&k| owned[k])
                .map(|k| kinds[k - 1].tile_class());
            let label = hidden_label.unwrap_or_else(|| {
                let total: f64 = sums.iter().sum::<f64>() / area;
                if total < CLEAR_MASS_G_CM2 {
                    TileClass::Clear
                } else {
                    let dominant = (0..3)
                        .max_by(|&a, &b| (sums[a] * mu[a]).total_cmp(&(sums[b] * mu[b])))
                        .unwrap_or(0);
                    match Material::ALL[dominant] {
                        Material::Organic => TileClass::Organic,
                        Material::Inorganic => TileClass::Inorganic,
                        Material::Steel => TileClass::Metal,
                    }
                }
            });
            labels.push(label);
        }
    }
    (tx as u32, ty as u32, labels)
}
