//! The encounter grid: latest positions of slow ships in cells of about the encounter distance,
//! so that finding a ship's close neighbours looks at nine cells instead of every vessel.

use std::collections::HashMap;

use geo::Haversine;

use crate::ais::messages::LatLon;

/// A grid cell: (row of latitude, column of longitude within the row).
pub(super) type Cell = (i32, i32);

/// The latest positions of slow ships, bucketed so that everything within `cell_m` of a point
/// lies in the (at most) nine cells [`Grid::around`] it.
///
/// Rows are `cell_m` of latitude. Each row has as many columns as fit around the parallel at
/// the most poleward latitude of the row and its two neighbours, with the width bound by the
/// chord (two points less than `cell_m` apart whose latitudes are at most φ differ in longitude
/// by at most 2·asin(cell_m / (2R·cos φ))), so that near the poles rows shrink to one cell and
/// across the antimeridian columns wrap.
#[derive(Debug, Clone)]
pub(super) struct Grid {
    cell_m: f64,
    row_deg: f64,
    rows: i32,
    pub(super) cells: HashMap<Cell, Vec<u32>>,
    pub(super) entries: usize,
}

impl Grid {
    pub(super) fn new(cell_m: f64) -> Grid {
        let cell_m = cell_m.max(1.0);
        let row_deg = (cell_m / Haversine.radius()).to_degrees();
        Grid {
            cell_m,
            row_deg,
            rows: (180.0 / row_deg).ceil().clamp(1.0, f64::from(i32::MAX)) as i32,
            cells: HashMap::new(),
            entries: 0,
        }
    }

    pub(super) fn row(&self, lat: f64) -> i32 {
        let r = ((lat + 90.0) / self.row_deg).floor();
        r.clamp(0.0, f64::from(self.rows - 1)) as i32
    }

    pub(super) fn columns(&self, row: i32) -> i32 {
        let south = -90.0 + f64::from(row - 1) * self.row_deg;
        let north = -90.0 + f64::from(row + 2) * self.row_deg;
        let pole = south.abs().max(north.abs()).min(90.0);
        // 0.1% margin for rounding.
        let x = self.cell_m * 1.001 / (2.0 * Haversine.radius() * pole.to_radians().cos());
        if x.is_nan() || x >= 1.0 {
            return 1;
        }
        let span = 2.0 * x.asin();
        (std::f64::consts::TAU / span)
            .floor()
            .clamp(1.0, f64::from(i32::MAX)) as i32
    }

    pub(super) fn column(&self, lon: f64, row: i32) -> i32 {
        let n = self.columns(row);
        let c = ((lon + 180.0) / 360.0 * f64::from(n)).floor() as i64;
        c.rem_euclid(i64::from(n)) as i32
    }

    pub(super) fn cell(&self, p: LatLon) -> Cell {
        let row = self.row(p.lat);
        (row, self.column(p.lon, row))
    }

    pub(super) fn around(&self, p: LatLon) -> Vec<Cell> {
        let row = self.row(p.lat);
        let mut out = Vec::with_capacity(9);
        for r in (row - 1).max(0)..=(row + 1).min(self.rows - 1) {
            let n = self.columns(r);
            let c = self.column(p.lon, r);
            for dc in [-1, 0, 1] {
                let cell = (r, (i64::from(c) + dc).rem_euclid(i64::from(n)) as i32);
                if !out.contains(&cell) {
                    out.push(cell);
                }
            }
        }
        out
    }

    pub(super) fn insert(&mut self, cell: Cell, mmsi: u32) {
        self.cells.entry(cell).or_default().push(mmsi);
        self.entries += 1;
    }

    pub(super) fn remove(&mut self, cell: Cell, mmsi: u32) {
        let Some(list) = self.cells.get_mut(&cell) else {
            return;
        };
        if let Some(i) = list.iter().position(|m| *m == mmsi) {
            list.swap_remove(i);
            self.entries = self.entries.saturating_sub(1);
        }
        if list.is_empty() {
            self.cells.remove(&cell);
        }
    }
}
