//! A sortie's frames and telemetry to detections: the road `mizugiwa drone frames` drives.

use opencv::prelude::*;

use super::camera::{Intrinsics, Lens, View};
use super::detect::Detector;
use super::detection::{group_sightings, Detection};
use super::frames::FrameSource;
use super::timestamps::rfc3339;
use super::track::{PoseTrack, TrackOptions, Uncovered};
use super::ImageryError;

/// How a sortie is analysed.
#[derive(Debug, Clone, Copy)]
pub struct AnalyseOptions {
    pub lens: Lens,
    pub track: TrackOptions,
    /// Analyse one frame in this many (1: all). At 30 frames/s a boat stays in view for
    /// seconds, so a few frames a second find it as surely for a fraction of the work.
    pub every: u64,
    /// Frames outside the log are skipped instead of failing the run.
    pub allow_partial: bool,
    /// Detections this close (plus half the object's length) and at most `group_gap_us`
    /// apart are the same object, m.
    pub group_radius_m: f64,
    pub group_gap_us: u64,
}

impl Default for AnalyseOptions {
    fn default() -> AnalyseOptions {
        AnalyseOptions {
            lens: Lens::default(),
            track: TrackOptions::default(),
            every: 1,
            allow_partial: false,
            group_radius_m: 15.0,
            group_gap_us: 3_000_000,
        }
    }
}

/// What a run found and what it could not look at.
#[derive(Debug, Default)]
pub struct Analysis {
    pub detections: Vec<Detection>,
    /// Distinct objects among the detections.
    pub objects: u32,
    pub frames_read: u64,
    pub frames_analysed: u64,
    /// Frames with no water found in them.
    pub frames_without_water: u64,
    /// Frames skipped: inside a gap in the telemetry, or (with `allow_partial`) outside it.
    pub frames_in_gaps: u64,
    pub frames_outside_log: u64,
    /// What the source said it held, when it said.
    pub frames_expected: Option<u64>,
}

/// Runs `detector` over every `options.every`-th frame of `source`, each with the camera pose
/// interpolated from `track`. `progress` hears (frames read, frames expected) after each frame.
pub fn analyse(
    source: &mut FrameSource,
    track: &PoseTrack,
    detector: &Detector,
    options: &AnalyseOptions,
    mut progress: impl FnMut(u64, Option<u64>),
) -> Result<Analysis, ImageryError> {
    let expected = source.frame_count();
    let mut out = Analysis {
        frames_expected: expected,
        ..Default::default()
    };
    let (log_start, log_end) = track.span_text();
    let tolerance = options.track.edge_tolerance_us;
    let (log_a, log_b) = track.span_us();
    // Before reading a frame: a video that the log does not cover at all, or (without
    // `allow_partial`) only in part, is refused at once rather than after an hour of decoding.
    let (first, last) = source.expected_span_us();
    let outside = |t: u64| t + tolerance < log_a || t > log_b.saturating_add(tolerance);
    let (first_out, last_out) = (outside(first), last.is_some_and(outside));
    let disjoint =
        first > log_b.saturating_add(tolerance) || last.is_some_and(|l| l + tolerance < log_a);
    if disjoint || (!options.allow_partial && (first_out || last_out)) {
        let (frame, t) = if first_out {
            (0, first)
        } else {
            (
                expected.unwrap_or(1).saturating_sub(1),
                last.unwrap_or(first),
            )
        };
        return Err(ImageryError::NotCovered {
            frame,
            frame_time: rfc3339(t),
            log_start,
            log_end,
        });
    }
    let every = options.every.max(1);
    while let Some(frame) = source.next_frame()? {
        out.frames_read += 1;
        if frame.index % every == 0 {
            match track.pose_at(frame.time_us, &options.track) {
                Ok(pose) => {
                    let intrinsics = Intrinsics::from_lens(
                        frame.image.cols() as u32,
                        frame.image.rows() as u32,
                        options.lens,
                    )?;
                    let found = detector.detect(&frame, &View::new(intrinsics, pose))?;
                    out.frames_analysed += 1;
                    if found.water_fraction == 0.0 {
                        out.frames_without_water += 1;
                    }
                    out.detections.extend(found.detections);
                }
                Err(Uncovered::Gap { .. }) => out.frames_in_gaps += 1,
                Err(Uncovered::Outside) if options.allow_partial => out.frames_outside_log += 1,
                Err(Uncovered::Outside) => {
                    return Err(ImageryError::NotCovered {
                        frame: frame.index,
                        frame_time: rfc3339(frame.time_us),
                        log_start,
                        log_end,
                    })
                }
            }
        }
        progress(out.frames_read, expected);
    }
    if out.frames_read == 0 {
        return Err(ImageryError::Frames {
            source_name: source.name().to_string(),
            reason: "no frames could be read".into(),
        });
    }
    out.objects = group_sightings(
        &mut out.detections,
        options.group_radius_m,
        options.group_gap_us,
    );
    Ok(out)
}
