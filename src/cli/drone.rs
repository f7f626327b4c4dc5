//! `mizugiwa drone`: patrol planning; the ground station and simulator are in `drone_link`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Subcommand, ValueEnum};
use geo::{LineString, Polygon};
use mizugiwa_drone::plan::{self, Camera, Geofence, Plan, SurveyRequest, Waypoint};

#[derive(Debug, Subcommand)]
pub enum DroneCommand {
    /// Plan a lawnmower survey of an area and write it as a QGroundControl `.plan` file.
    ///
    /// Lines run along HEADING, spaced so that the camera's footprints overlap by OVERLAP;
    /// every leg is checked against the fence before the file is written. Prints the plan's
    /// length, flight time and battery share.
    Survey {
        /// The area: a GeoJSON Polygon (or the first Polygon feature of a file).
        #[arg(long)]
        area: PathBuf,
        /// Flight altitude above home, metres.
        #[arg(long, default_value_t = 120.0)]
        alt: f64,
        /// Direction of the lines, degrees clockwise from north.
        #[arg(long, default_value_t = 0.0)]
        heading: f64,
        /// Side overlap of neighbouring footprints, 0..1.
        #[arg(long, default_value_t = 0.2)]
        overlap: f64,
        /// Camera sensor width, mm (default: a 1" sensor).
        #[arg(long, default_value_t = 13.2)]
        sensor_width_mm: f64,
        /// Lens focal length, mm.
        #[arg(long, default_value_t = 8.8)]
        focal_mm: f64,
        /// Longest leg between waypoints, metres.
        #[arg(long, default_value_t = 200.0)]
        max_leg: f64,
        /// Home (take-off) position, `LAT,LON`.
        #[arg(long, value_parser = parse_lat_lon)]
        home: (f64, f64),
        /// Geofence: a GeoJSON file of polygons; features with `"exclusion": true` in their
        /// properties are exclusion zones, the others inclusion zones.
        #[arg(long)]
        fence: Option<PathBuf>,
        /// Cruise speed, m/s.
        #[arg(long, default_value_t = 15.0)]
        speed: f64,
        /// Usable flight time on one battery, minutes.
        #[arg(long, default_value_t = 30.0)]
        battery_minutes: f64,
        #[arg(long, value_enum, default_value_t = Firmware::Ardupilot)]
        firmware: Firmware,
        /// The `.plan` file to write.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Plan a corridor scan along a coastline and write it as a QGroundControl `.plan` file.
    ///
    /// Passes run parallel to the shore over the sea from OFFSET to OFFSET + WIDTH metres off
    /// it, spaced so that the camera's footprints overlap by OVERLAP, flown back and forth;
    /// the ways between passes go round the land. Every leg is checked against the fence
    /// before the file is written. Prints the passes, the share of the corridor the camera
    /// sees, and the plan's length, flight time and battery share.
    Plan(CorridorArgs),
    /// Read a `.plan` file and check it: every leg against its own fence, and the endurance.
    Check {
        plan: PathBuf,
        #[arg(long, default_value_t = 30.0)]
        battery_minutes: f64,
    },
    /// The ground station and the simulator: upload, watch, command, sim.
    #[command(flatten)]
    Link(super::drone_link::LinkCommand),
    /// Imagery: detections from a sortie's video and telemetry, synthetic sorties.
    #[command(flatten)]
    Imagery(super::drone_frames::ImageryCommand),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Firmware {
    Ardupilot,
    Px4,
}

pub(super) fn parse_lat_lon(s: &str) -> Result<(f64, f64), String> {
    let (a, b) = s.split_once(',').ok_or("expected LAT,LON")?;
    let lat: f64 = a.trim().parse().map_err(|_| format!("latitude {a:?}"))?;
    let lon: f64 = b.trim().parse().map_err(|_| format!("longitude {b:?}"))?;
    if lat.abs() > 90.0 || lon.abs() > 180.0 {
        return Err(format!("({lat}, {lon}) is not a position"));
    }
    Ok((lat, lon))
}

/// Every polygon of a GeoJSON text (geometry, feature or collection), with the feature's
/// properties.
fn polygons(path: &Path) -> anyhow::Result<Vec<(Polygon<f64>, serde_json::Value)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let mut out = Vec::new();
    collect(&v, &serde_json::Value::Null, &mut out)
        .with_context(|| format!("reading GeoJSON {}", path.display()))?;
    if out.is_empty() {
        bail!("{} holds no Polygon", path.display());
    }
    Ok(out)
}

fn collect(
    v: &serde_json::Value,
    props: &serde_json::Value,
    out: &mut Vec<(Polygon<f64>, serde_json::Value)>,
) -> anyhow::Result<()> {
    match v["type"].as_str() {
        Some("FeatureCollection") => {
            for f in v["features"].as_array().into_iter().flatten() {
                collect(f, &serde_json::Value::Null, out)?;
            }
        }
        Some("Feature") => collect(&v["geometry"], &v["properties"], out)?,
        Some("Polygon") => {
            let ring = v["coordinates"][0]
                .as_array()
                .context("Polygon without coordinates")?;
            let coords = ring
                .iter()
                .map(|p| match (p[0].as_f64(), p[1].as_f64()) {
                    (Some(lon), Some(lat)) if lon.abs() <= 180.0 && lat.abs() <= 90.0 => {
                        Ok((lon, lat))
                    }
                    _ => bail!("not a [lon, lat] position: {p}"),
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            if coords.len() < 4 {
                bail!("a Polygon ring needs at least 4 positions");
            }
            out.push((
                Polygon::new(LineString::from(coords), vec![]),
                props.clone(),
            ));
        }
        _ => {}
    }
    Ok(())
}

/// The `--fence` file: features with `"exclusion": true` are exclusion zones, the others
/// inclusion zones; no file, no fence.
fn read_fence(path: Option<&Path>) -> anyhow::Result<Geofence> {
    let mut geofence = Geofence::default();
    for (p, props) in path.map(polygons).transpose()?.into_iter().flatten() {
        if props["exclusion"] == true {
            geofence.exclusions.push(p);
        } else {
            geofence.inclusions.push(p);
        }
    }
    Ok(geofence)
}

fn report(plan: &Plan, battery_minutes: f64) {
    let e = plan::endurance(plan, 3.0, battery_minutes * 60.0, 0.25);
    println!(
        "{} waypoints, {:.1} km, {:.0} min at {} m/s: {:.0}% of a {battery_minutes}-minute battery{}",
        plan.waypoints.len(),
        e.distance_m / 1000.0,
        e.flight_time_s / 60.0,
        plan.cruise_speed_mps,
        e.battery_fraction * 100.0,
        if e.fits { "" } else { " — more than one battery with a 25% reserve: split the area" }
    );
}

pub fn run(cmd: DroneCommand) -> anyhow::Result<()> {
    match cmd {
        DroneCommand::Survey {
            area,
            alt,
            heading,
            overlap,
            sensor_width_mm,
            focal_mm,
            max_leg,
            home,
            fence,
            speed,
            battery_minutes,
            firmware,
            out,
        } => {
            let (area, _) = polygons(&area)?.remove(0);
            let req = SurveyRequest {
                area,
                alt_m: alt,
                camera: Camera {
                    sensor_width_mm,
                    focal_length_mm: focal_mm,
                },
                side_overlap: overlap,
                heading_deg: heading,
                max_leg_m: max_leg,
            };
            let waypoints = plan::survey(&req)?;
            let geofence = read_fence(fence.as_deref())?;
            let home = Waypoint {
                lat: home.0,
                lon: home.1,
                alt_m: 0.0,
            };
            plan::check_fence(&home, &waypoints, &geofence)
                .context("the plan breaks the fence; nothing written")?;
            let plan = Plan {
                home,
                waypoints,
                fence: geofence,
                rally: vec![home],
                cruise_speed_mps: speed,
            };
            let firmware_type = match firmware {
                Firmware::Ardupilot => 3,
                Firmware::Px4 => 12,
            };
            let text = serde_json::to_string_pretty(&plan::to_qgc_plan(&plan, firmware_type))?;
            std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "lines {:.0} m apart (footprint {:.0} m at {alt} m), fence checked; wrote {}",
                req.camera.line_spacing_m(alt, overlap),
                req.camera.footprint_width_m(alt),
                out.display()
            );
            report(&plan, battery_minutes);
            Ok(())
        }
        DroneCommand::Plan(args) => plan_corridor(args),
        DroneCommand::Link(c) => super::drone_link::run(c),
        DroneCommand::Imagery(c) => super::drone_frames::run(c),
        DroneCommand::Check {
            plan: path,
            battery_minutes,
        } => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            let p = plan::from_qgc_plan(&v)?;
            plan::check_fence(&p.home, &p.waypoints, &p.fence)?;
            eprintln!(
                "{}: every leg inside its fence ({} inclusion, {} exclusion zones)",
                path.display(),
                p.fence.inclusions.len(),
                p.fence.exclusions.len()
            );
            report(&p, battery_minutes);
            Ok(())
        }
    }
}

/// `mizugiwa drone plan`: a corridor scan along a coastline.
#[derive(Debug, clap::Args)]
pub struct CorridorArgs {
    /// The coastline: GeoJSON land polygons (e.g. Natural Earth's land, cut to the area), a
    /// LineString along the shore, or both (then the line is the stretch and the land tells
    /// which side the sea is on).
    #[arg(long)]
    coast: PathBuf,
    /// One end of the stretch to patrol, `LAT,LON` near the shore (within 5 km); without
    /// --from and --to the whole line, or every shore of the land, is patrolled.
    #[arg(long, value_parser = parse_lat_lon, requires = "to")]
    from: Option<(f64, f64)>,
    /// The other end of the stretch (the shorter way round an island from --from).
    #[arg(long, value_parser = parse_lat_lon, requires = "from")]
    to: Option<(f64, f64)>,
    /// Which side of a LineString the sea is on, looking along it. Default: the side away
    /// from the land when the file has land, otherwise right (OpenStreetMap's convention).
    #[arg(long, value_enum)]
    sea_side: Option<SeaSideArg>,
    /// Distance from the shore to the corridor's inner edge, metres.
    #[arg(long, default_value_t = 50.0)]
    offset: f64,
    /// Width of the corridor, metres.
    #[arg(long, default_value_t = 500.0)]
    width: f64,
    /// Flight altitude above home, metres.
    #[arg(long, default_value_t = 120.0)]
    alt: f64,
    /// Side overlap of neighbouring passes' footprints, 0 <= OVERLAP < 1.
    #[arg(long, default_value_t = 0.2)]
    overlap: f64,
    /// Camera sensor width, mm (default: a 1" sensor).
    #[arg(long, default_value_t = 13.2)]
    sensor_width_mm: f64,
    /// Lens focal length, mm.
    #[arg(long, default_value_t = 8.8)]
    focal_mm: f64,
    /// Longest leg between waypoints, metres.
    #[arg(long, default_value_t = 200.0)]
    max_leg: f64,
    /// Home (take-off) position, `LAT,LON`. Default: the shore point next to the first pass.
    #[arg(long, value_parser = parse_lat_lon)]
    home: Option<(f64, f64)>,
    /// Geofence: a GeoJSON file of polygons; features with `"exclusion": true` in their
    /// properties are exclusion zones, the others inclusion zones.
    #[arg(long)]
    fence: Option<PathBuf>,
    /// Cruise speed, m/s.
    #[arg(long, default_value_t = 15.0)]
    speed: f64,
    /// Usable flight time on one battery, minutes.
    #[arg(long, default_value_t = 30.0)]
    battery_minutes: f64,
    #[arg(long, value_enum, default_value_t = Firmware::Ardupilot)]
    firmware: Firmware,
    /// Also write the corridor as GeoJSON here (to look at beside the plan).
    #[arg(long)]
    corridor_out: Option<PathBuf>,
    /// The `.plan` file to write.
    #[arg(short, long)]
    out: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SeaSideArg {
    Left,
    Right,
}

fn plan_corridor(a: CorridorArgs) -> anyhow::Result<()> {
    use mizugiwa_drone::corridor::{self, Coast, CorridorRequest, SeaSide};

    let text = std::fs::read_to_string(&a.coast)
        .with_context(|| format!("reading {}", a.coast.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", a.coast.display()))?;
    let coast =
        Coast::from_geojson(&v).with_context(|| format!("reading {}", a.coast.display()))?;
    let lon_lat = |(lat, lon): (f64, f64)| geo::Coord { x: lon, y: lat };
    let req = CorridorRequest {
        coast,
        stretch: a.from.zip(a.to).map(|(f, t)| (lon_lat(f), lon_lat(t))),
        sea_side: a.sea_side.map(|s| match s {
            SeaSideArg::Left => SeaSide::Left,
            SeaSideArg::Right => SeaSide::Right,
        }),
        offset_m: a.offset,
        width_m: a.width,
        alt_m: a.alt,
        camera: Camera {
            sensor_width_mm: a.sensor_width_mm,
            focal_length_mm: a.focal_mm,
        },
        side_overlap: a.overlap,
        max_leg_m: a.max_leg,
    };
    let scan = corridor::corridor_scan(&req).context("no corridor plan; nothing written")?;
    let geofence = read_fence(a.fence.as_deref())?;
    let home = match a.home {
        Some((lat, lon)) => Waypoint {
            lat,
            lon,
            alt_m: 0.0,
        },
        None => scan.shore_start,
    };
    plan::check_fence(&home, &scan.waypoints, &geofence)
        .context("the plan breaks the fence; nothing written")?;
    let p = Plan {
        home,
        waypoints: scan.waypoints.clone(),
        fence: geofence,
        rally: vec![home],
        cruise_speed_mps: a.speed,
    };
    let firmware_type = match a.firmware {
        Firmware::Ardupilot => 3,
        Firmware::Px4 => 12,
    };
    let text = serde_json::to_string_pretty(&plan::to_qgc_plan(&p, firmware_type))?;
    std::fs::write(&a.out, text).with_context(|| format!("writing {}", a.out.display()))?;
    if let Some(path) = &a.corridor_out {
        std::fs::write(path, scan.corridor_geojson().to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let offsets = &scan.pass_offsets_m;
    let passes = match offsets.len() {
        1 => format!("1 pass {:.0} m off it", offsets[0]),
        n => format!(
            "{n} passes {:.0}-{:.0} m off it, {:.0} m apart",
            offsets[0],
            offsets[n - 1],
            scan.spacing_m
        ),
    };
    eprintln!(
        "{:.1} km of shore: {passes} (footprint {:.0} m at {} m); the camera sees {:.2}% of the \
         corridor {}-{} m off the shore; fence checked; wrote {}",
        scan.shore_m / 1000.0,
        scan.footprint_m,
        a.alt,
        scan.coverage * 100.0,
        a.offset,
        a.offset + a.width,
        a.out.display()
    );
    if scan.coverage < 0.99 {
        eprintln!("warning: less than 99% of the corridor is seen: overlap more, or fly higher");
    }
    let e = plan::endurance(&p, 3.0, a.battery_minutes * 60.0, 0.25);
    println!(
        "{} waypoints, {:.1} km, {:.0} min at {} m/s: {:.0}% of a {}-minute battery{}",
        p.waypoints.len(),
        e.distance_m / 1000.0,
        e.flight_time_s / 60.0,
        p.cruise_speed_mps,
        e.battery_fraction * 100.0,
        a.battery_minutes,
        if e.fits {
            ""
        } else {
            " — more than one battery with a 25% reserve: patrol a shorter stretch"
        }
    );
    Ok(())
}
