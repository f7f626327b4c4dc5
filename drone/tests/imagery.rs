//! Drone imagery end to end: a synthetic sortie written as an MJPG video and a tlog, read back
//! through OpenCV and the telemetry track, detections checked against the rendered truth.

use std::path::{Path, PathBuf};

use mizugiwa_drone::imagery::analyse::{analyse, AnalyseOptions, Analysis};
use mizugiwa_drone::imagery::camera::{distance_m, Gimbal};
use mizugiwa_drone::imagery::detect::{Detector, DetectorConfig};
use mizugiwa_drone::imagery::detection::DetectionClass;
use mizugiwa_drone::imagery::frames::FrameSource;
use mizugiwa_drone::imagery::render::TargetKind;
use mizugiwa_drone::imagery::sortie::{patrol_sortie, Sortie};
use mizugiwa_drone::imagery::timestamps::file_stamp;
use mizugiwa_drone::imagery::track::{PoseTrack, TrackOptions};
use mizugiwa_drone::imagery::ImageryError;

/// The stated georeferencing error with telemetry as logged: 2 m plus 1% of the slant range.
fn stated_error_m(range_m: f64) -> f64 {
    2.0 + 0.01 * range_m
}

fn write(sortie: &Sortie, dir: &Path) -> (PathBuf, PathBuf) {
    let video = dir.join(format!("sortie-{}.avi", file_stamp(sortie.start_us)));
    let tlog = dir.join("sortie.tlog");
    sortie.write(&video, &tlog, |_, _| {}).unwrap();
    (video, tlog)
}

fn run(video: &Path, tlog: &Path, options: &AnalyseOptions) -> Result<Analysis, ImageryError> {
    let track = PoseTrack::from_tlog(&std::fs::read(tlog).unwrap(), None)?;
    let mut source = FrameSource::open(video.to_str().unwrap(), None, 10.0)?;
    analyse(
        &mut source,
        &track,
        &Detector::new(DetectorConfig::default())?,
        options,
        |_, _| {},
    )
}

#[test]
fn a_rendered_sortie_puts_the_boat_and_the_person_where_they_are() {
    let dir = tempfile::tempdir().unwrap();
    // 1280 x 720 so that the person (0.6 m) covers 4 pixels; 5 frames/s keeps the test short.
    let mut sortie = patrol_sortie(1, 1280, 720, 3.0);
    sortie.fps = 5.0;
    let (video, tlog) = write(&sortie, dir.path());
    let a = run(&video, &tlog, &AnalyseOptions::default()).unwrap();
    assert_eq!(
        (a.frames_read, a.frames_analysed, a.frames_expected),
        (15, 15, Some(15))
    );
    assert_eq!(a.frames_without_water, 0);
    let targets = &sortie.scene.targets;
    let (boat, person) = (&targets[0], &targets[1]);
    assert!(
        matches!(boat.kind, TargetKind::Boat { .. })
            && matches!(person.kind, TargetKind::Person { .. })
    );
    let mut boats = 0;
    let mut persons = 0;
    for d in &a.detections {
        let truth = match d.class {
            DetectionClass::Vessel => boat,
            DetectionClass::Person => person,
            DetectionClass::Unknown => panic!("unclassified detection {d:?}"),
        };
        let err = distance_m((d.lat_deg, d.lon_deg), (truth.lat_deg, truth.lon_deg));
        assert!(
            err < stated_error_m(d.range_m),
            "{} {:?} is {err:.2} m from the truth at {:.0} m range",
            d.id,
            d.class,
            d.range_m
        );
        match d.class {
            DetectionClass::Vessel => {
                boats += 1;
                assert!(
                    (d.length_m - 9.0).abs() < 2.0,
                    "{} long {}",
                    d.id,
                    d.length_m
                );
            }
            _ => persons += 1,
        }
        assert!(!d.crop_jpeg.is_empty());
        // The pose used is the one the frame was rendered from, as logged and interpolated.
        let true_pose = sortie.pose_at((d.time_us - sortie.start_us) as f64 / 1e6);
        assert!((d.pose.vehicle.roll_deg - true_pose.vehicle.roll_deg).abs() < 0.05);
        assert_eq!(
            d.pose.gimbal, true_pose.gimbal,
            "the gimbal comes from MOUNT_ORIENTATION"
        );
    }
    assert_eq!(boats, 15, "the boat in every frame");
    assert!(persons >= 13, "the person in nearly every frame: {persons}");
    assert_eq!(a.objects, 2, "one object each across the frames");
}

#[test]
fn a_fixed_camera_is_georeferenced_through_the_vehicle_attitude() {
    // No gimbal in the log: the camera is fixed to the body looking straight down, the vehicle
    // sways ±3° in roll, and the analysis is told the camera's pitch.
    let dir = tempfile::tempdir().unwrap();
    let mut sortie = patrol_sortie(2, 1280, 720, 1.0);
    sortie.fps = 5.0;
    sortie.gimbal = Gimbal::body_pitch(-90.0);
    sortie.sway_deg = 3.0;
    // Put the boat below the vehicle's path.
    let mid = sortie.pose_at(0.5).vehicle;
    sortie.scene.targets[0].lat_deg = mid.lat_deg + 0.0002;
    sortie.scene.targets[0].lon_deg = mid.lon_deg;
    sortie.scene.targets.truncate(1);
    let (video, tlog) = write(&sortie, dir.path());
    let options = AnalyseOptions {
        track: TrackOptions {
            fixed_gimbal: Gimbal::body_pitch(-90.0),
            ..Default::default()
        },
        ..Default::default()
    };
    let a = run(&video, &tlog, &options).unwrap();
    assert_eq!(a.detections.len(), 5, "{:#?}", a.detections);
    let t = &sortie.scene.targets[0];
    for d in &a.detections {
        let err = distance_m((d.lat_deg, d.lon_deg), (t.lat_deg, t.lon_deg));
        assert!(
            err < stated_error_m(d.range_m),
            "{} is {err:.2} m off",
            d.id
        );
        assert_eq!(d.pose.gimbal, Gimbal::body_pitch(-90.0));
    }
    // Told the wrong camera pitch, the same frames put the boat tens of metres away: the
    // pitch is used, not ignored.
    let wrong = AnalyseOptions {
        track: TrackOptions {
            fixed_gimbal: Gimbal::body_pitch(-70.0),
            ..Default::default()
        },
        ..Default::default()
    };
    let b = run(&video, &tlog, &wrong).unwrap();
    assert!(b
        .detections
        .iter()
        .all(|d| distance_m((d.lat_deg, d.lon_deg), (t.lat_deg, t.lon_deg)) > 20.0));
}

#[test]
fn an_empty_sea_along_the_coast_gives_no_detections() {
    let dir = tempfile::tempdir().unwrap();
    let mut sortie = patrol_sortie(3, 960, 540, 4.0);
    sortie.fps = 2.0;
    sortie.scene.targets.clear();
    let (video, tlog) = write(&sortie, dir.path());
    let a = run(&video, &tlog, &AnalyseOptions::default()).unwrap();
    assert_eq!(a.frames_analysed, 8);
    assert!(
        a.detections.is_empty(),
        "{:#?}",
        a.detections
            .iter()
            .map(|d| (d.id.clone(), d.pixel, d.score))
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_corrupt_truncated_or_missing_video_gives_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut sortie = patrol_sortie(4, 320, 240, 2.0);
    sortie.scene.targets.clear();
    let (video, tlog) = write(&sortie, dir.path());
    let stamp = file_stamp(sortie.start_us);

    let missing = dir.path().join(format!("gone-{stamp}.avi"));
    let e = run(&missing, &tlog, &AnalyseOptions::default()).unwrap_err();
    assert!(e.to_string().contains("no such file"), "{e}");

    let garbage = dir.path().join(format!("garbage-{stamp}.avi"));
    std::fs::write(
        &garbage,
        b"RIFF\x10\0\0\0AVI LIST garbage, not a video at all",
    )
    .unwrap();
    let e = run(&garbage, &tlog, &AnalyseOptions::default()).unwrap_err();
    assert!(e.to_string().contains("cannot read this as a video"), "{e}");

    // Cut in half: the frames before the cut are read, the rest reported missing.
    let bytes = std::fs::read(&video).unwrap();
    let cut = dir.path().join(format!("cut-{stamp}.avi"));
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let a = run(&cut, &tlog, &AnalyseOptions::default()).unwrap();
    assert!(a.frames_read > 0 && a.frames_read < 20, "{}", a.frames_read);
    assert_eq!(a.frames_expected, Some(20));
}

#[test]
fn a_log_that_does_not_cover_the_video_gives_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut sortie = patrol_sortie(5, 320, 240, 2.0);
    sortie.scene.targets.clear();
    let (video, _) = write(&sortie, dir.path());

    // The log of another flight, an hour later.
    let mut other = sortie.clone();
    other.start_us += 3_600_000_000;
    let later = dir.path().join("later.tlog");
    std::fs::write(&later, other.telemetry()).unwrap();
    let e = run(&video, &later, &AnalyseOptions::default()).unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, ImageryError::NotCovered { frame: 0, .. }),
        "{text}"
    );
    assert!(
        text.contains("outside the telemetry log") && text.contains("2025-06-01T04:00"),
        "{text}"
    );

    // A log that stops halfway: refused, or with allow_partial the covered frames only.
    let mut short = sortie.clone();
    short.seconds = 1.0;
    short.log_margin_s = 0.0;
    let half = dir.path().join("half.tlog");
    std::fs::write(&half, short.telemetry()).unwrap();
    let e = run(&video, &half, &AnalyseOptions::default()).unwrap_err();
    assert!(
        matches!(e, ImageryError::NotCovered { frame: 19, .. }),
        "{e}"
    );
    let a = run(
        &video,
        &half,
        &AnalyseOptions {
            allow_partial: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(a.frames_read, 20);
    assert!(
        a.frames_outside_log >= 4 && a.frames_analysed >= 10,
        "{a:?}"
    );

    // Not a tlog at all.
    let junk = dir.path().join("junk.tlog");
    std::fs::write(&junk, "this is a text file").unwrap();
    let e = run(&video, &junk, &AnalyseOptions::default()).unwrap_err();
    assert!(e.to_string().contains("not a tlog"), "{e}");
}
