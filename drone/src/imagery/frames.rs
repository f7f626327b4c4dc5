//! Frames and their times: a video file or stream through OpenCV's `videoio`, or a directory
//! of images through `imgcodecs`.
//!
//! A video frame's time is the video's start plus the frame's presentation time as the
//! container gives it (so variable frame rates are right). The start comes from the caller, or
//! from a UTC stamp in the file name ([`super::timestamps::from_file_name`]). An image takes
//! the UTC stamp in its own name if every image has one, otherwise the start plus its place in
//! name order divided by the frame rate.

use std::path::{Path, PathBuf};

use opencv::core::Mat;
use opencv::prelude::*;
use opencv::{imgcodecs, videoio};

use super::timestamps::from_file_name;
use super::ImageryError;

/// Extensions read from an image directory.
const IMAGE_EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "tif", "tiff", "bmp", "webp"];

/// A frame with its place in the source and its time.
pub struct Frame {
    /// 0 for the first frame of the source.
    pub index: u64,
    /// Microseconds since the Unix epoch.
    pub time_us: u64,
    /// 8-bit BGR.
    pub image: Mat,
}

/// Where frames come from.
pub struct FrameSource {
    name: String,
    kind: Kind,
    next_index: u64,
}

enum Kind {
    Video {
        capture: videoio::VideoCapture,
        start_us: u64,
        fps: f64,
        frame_count: Option<u64>,
        last_ms: f64,
    },
    Images {
        files: Vec<(PathBuf, u64)>,
    },
}

fn frames_error(name: &str, reason: impl Into<String>) -> ImageryError {
    ImageryError::Frames {
        source_name: name.to_string(),
        reason: reason.into(),
    }
}

impl FrameSource {
    /// Opens `source`: a directory of images, a video file, or a stream URL (`rtsp://...`,
    /// `udp://...`). `start_us` is when the first frame was taken; without it the file name
    /// must carry a UTC stamp. `fps` paces an image sequence without stamps.
    pub fn open(
        source: &str,
        start_us: Option<u64>,
        fps: f64,
    ) -> Result<FrameSource, ImageryError> {
        let path = Path::new(source);
        let is_stream = source.contains("://");
        if !is_stream && !path.exists() {
            return Err(frames_error(source, "no such file or directory"));
        }
        let name_stamp = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(from_file_name);
        let no_start = || {
            frames_error(
                source,
                "the time of the first frame is unknown: pass the start (--video-start 2025-06-01T03:00:00Z) \
                 or name the file with a UTC stamp (...20250601T030000Z...)",
            )
        };
        if path.is_dir() {
            let files =
                image_files(source, path, start_us.or(name_stamp), fps)?.ok_or_else(no_start)?;
            return Ok(FrameSource {
                name: source.to_string(),
                kind: Kind::Images { files },
                next_index: 0,
            });
        }
        let start_us = start_us.or(name_stamp).ok_or_else(no_start)?;
        // Files go to FFmpeg directly: the "any" preference also tries GStreamer and OpenCV's
        // image-sequence reader, which take a non-video file for a pattern and fail with
        // misleading messages. Streams keep the preference open (GStreamer pipelines).
        let api = if is_stream {
            videoio::CAP_ANY
        } else {
            videoio::CAP_FFMPEG
        };
        let capture = videoio::VideoCapture::from_file(source, api)?;
        if !capture.is_opened()? {
            return Err(frames_error(
                source,
                "OpenCV cannot read this as a video (not a video, a codec its FFmpeg lacks, or a damaged file)",
            ));
        }
        let fps = capture.get(videoio::CAP_PROP_FPS)?;
        let count = capture.get(videoio::CAP_PROP_FRAME_COUNT)?;
        let frame_count = (count.is_finite() && count > 0.0).then_some(count as u64);
        Ok(FrameSource {
            name: source.to_string(),
            kind: Kind::Video {
                capture,
                start_us,
                fps: if fps.is_finite() && fps > 0.0 {
                    fps
                } else {
                    0.0
                },
                frame_count,
                last_ms: -1.0,
            },
            next_index: 0,
        })
    }

    /// The source as the user named it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many frames the source says it holds (a container's header can be wrong; a stream
    /// has none).
    pub fn frame_count(&self) -> Option<u64> {
        match &self.kind {
            Kind::Video { frame_count, .. } => *frame_count,
            Kind::Images { files } => Some(files.len() as u64),
        }
    }

    /// The time of the first frame and, when known, of the last, µs.
    pub fn expected_span_us(&self) -> (u64, Option<u64>) {
        match &self.kind {
            Kind::Video {
                start_us,
                fps,
                frame_count,
                ..
            } => {
                let end = frame_count
                    .filter(|_| *fps > 0.0)
                    .map(|n| start_us + ((n.saturating_sub(1)) as f64 / fps * 1e6) as u64);
                (*start_us, end)
            }
            Kind::Images { files } => (files[0].1, files.last().map(|f| f.1)),
        }
    }

    /// The next frame, `None` at the end. An image that cannot be read is an error naming it.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ImageryError> {
        let index = self.next_index;
        let frame = match &mut self.kind {
            Kind::Video {
                capture,
                start_us,
                fps,
                last_ms,
                ..
            } => {
                let mut image = Mat::default();
                if !capture.read(&mut image)? || image.empty() {
                    return Ok(None);
                }
                // FFmpeg gives the presentation time of the frame just read; a backend that
                // does not (or a stream that restarts at 0) gets the frame rate's clock.
                let pos_ms = capture.get(videoio::CAP_PROP_POS_MSEC)?;
                let ms = if pos_ms.is_finite() && pos_ms > *last_ms && (index == 0 || pos_ms > 0.0)
                {
                    pos_ms
                } else if *fps > 0.0 {
                    index as f64 * 1000.0 / *fps
                } else {
                    return Err(frames_error(
                        &self.name,
                        "the video gives neither frame times nor a frame rate",
                    ));
                };
                *last_ms = ms;
                Frame {
                    index,
                    time_us: *start_us + (ms * 1000.0).round() as u64,
                    image: to_bgr(image)?,
                }
            }
            Kind::Images { files } => {
                let Some((path, time_us)) = files.get(index as usize) else {
                    return Ok(None);
                };
                let image = imgcodecs::imread(path, imgcodecs::IMREAD_COLOR)?;
                if image.empty() {
                    return Err(frames_error(
                        &path.display().to_string(),
                        "not an image OpenCV can read",
                    ));
                }
                Frame {
                    index,
                    time_us: *time_us,
                    image,
                }
            }
        };
        self.next_index += 1;
        Ok(Some(frame))
    }
}

/// Grey or BGRA frames (some codecs and cameras) as BGR.
fn to_bgr(image: Mat) -> Result<Mat, ImageryError> {
    use opencv::imgproc::{cvt_color, COLOR_BGRA2BGR, COLOR_GRAY2BGR};
    let code = match image.channels() {
        3 if image.depth() == opencv::core::CV_8U => return Ok(image),
        1 => COLOR_GRAY2BGR,
        4 => COLOR_BGRA2BGR,
        n => {
            return Err(ImageryError::Camera(format!(
                "frames with {n} channels of depth {} are not read",
                image.depth()
            )))
        }
    };
    let mut out = Mat::default();
    cvt_color(&image, &mut out, code, 0)?;
    Ok(out)
}

/// The images of a directory in name order with their times, or `None` when their times are
/// unknown (no stamps in the names and no start).
fn image_files(
    source: &str,
    dir: &Path,
    start_us: Option<u64>,
    fps: f64,
) -> Result<Option<Vec<(PathBuf, u64)>>, ImageryError> {
    let entries = std::fs::read_dir(dir).map_err(|e| ImageryError::Io {
        path: source.to_string(),
        source: e,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(frames_error(
            source,
            format!(
                "no images ({}) in this directory",
                IMAGE_EXTENSIONS.join(", ")
            ),
        ));
    }
    let stamps: Vec<Option<u64>> = files
        .iter()
        .map(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(from_file_name)
        })
        .collect();
    if stamps.iter().all(Option::is_some) {
        let mut timed: Vec<(PathBuf, u64)> = files
            .into_iter()
            .zip(stamps.into_iter().flatten())
            .collect();
        timed.sort_by_key(|(_, t)| *t);
        return Ok(Some(timed));
    }
    let Some(start_us) = start_us else {
        return Ok(None);
    };
    if !(fps.is_finite() && fps > 0.0) {
        return Err(frames_error(
            source,
            format!("an image sequence without time stamps needs a positive frame rate, not {fps}"),
        ));
    }
    Ok(Some(
        files
            .into_iter()
            .enumerate()
            .map(|(i, p)| (p, start_us + (i as f64 * 1e6 / fps).round() as u64))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use opencv::core::{Scalar, Size, CV_8UC3};

    use super::*;

    fn write_video(path: &Path, frames: i32) {
        let fourcc = videoio::VideoWriter::fourcc('M', 'J', 'P', 'G').unwrap();
        let mut w = videoio::VideoWriter::new(
            path.to_str().unwrap(),
            fourcc,
            10.0,
            Size::new(64, 48),
            true,
        )
        .unwrap();
        assert!(w.is_opened().unwrap(), "this OpenCV cannot write MJPG");
        for i in 0..frames {
            let m =
                Mat::new_rows_cols_with_default(48, 64, CV_8UC3, Scalar::all(f64::from(i * 20)))
                    .unwrap();
            w.write(&m).unwrap();
        }
    }

    #[test]
    fn video_frames_carry_their_presentation_times() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sortie-20250601T030000Z.avi");
        write_video(&path, 5);
        let mut src = FrameSource::open(path.to_str().unwrap(), None, 0.0).unwrap();
        assert_eq!(src.frame_count(), Some(5));
        let t0 = 1_748_746_800_000_000;
        assert_eq!(src.expected_span_us(), (t0, Some(t0 + 400_000)));
        let mut times = Vec::new();
        while let Some(f) = src.next_frame().unwrap() {
            assert_eq!(
                (f.image.cols(), f.image.rows(), f.image.channels()),
                (64, 48, 3)
            );
            times.push(f.time_us - t0);
        }
        assert_eq!(times, [0, 100_000, 200_000, 300_000, 400_000]);
        // An explicit start wins over the name.
        let mut src = FrameSource::open(path.to_str().unwrap(), Some(7), 0.0).unwrap();
        assert_eq!(src.next_frame().unwrap().unwrap().time_us, 7);
    }

    #[test]
    fn image_sequences_take_stamps_from_names_or_the_frame_rate() {
        let dir = tempfile::tempdir().unwrap();
        let m = Mat::new_rows_cols_with_default(8, 8, CV_8UC3, Scalar::all(90.0)).unwrap();
        for name in ["b_1748746800500.png", "a_1748746800000.png", "notes.txt"] {
            if name.ends_with("png") {
                imgcodecs::imwrite(
                    dir.path().join(name).to_str().unwrap(),
                    &m,
                    &Default::default(),
                )
                .unwrap();
            } else {
                std::fs::write(dir.path().join(name), "x").unwrap();
            }
        }
        let mut src = FrameSource::open(dir.path().to_str().unwrap(), None, 0.0).unwrap();
        assert_eq!(src.frame_count(), Some(2));
        assert_eq!(
            src.next_frame().unwrap().unwrap().time_us,
            1_748_746_800_000_000
        );
        assert_eq!(
            src.next_frame().unwrap().unwrap().time_us,
            1_748_746_800_500_000
        );
        assert!(src.next_frame().unwrap().is_none());
        imgcodecs::imwrite(
            dir.path().join("c.png").to_str().unwrap(),
            &m,
            &Default::default(),
        )
        .unwrap();
        let e = FrameSource::open(dir.path().to_str().unwrap(), None, 2.0)
            .err()
            .unwrap();
        assert!(
            e.to_string().contains("time of the first frame is unknown"),
            "{e}"
        );
        let mut src =
            FrameSource::open(dir.path().to_str().unwrap(), Some(1_000_000), 2.0).unwrap();
        let times: Vec<u64> = std::iter::from_fn(|| src.next_frame().unwrap())
            .map(|f| f.time_us)
            .collect();
        assert_eq!(times, [1_000_000, 1_500_000, 2_000_000]);
    }

    #[test]
    fn missing_damaged_and_untimed_sources_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone-20250601T030000Z.avi");
        let e = FrameSource::open(missing.to_str().unwrap(), None, 0.0)
            .err()
            .unwrap();
        assert!(e.to_string().contains("no such file"), "{e}");
        let garbage = dir.path().join("garbage-20250601T030000Z.avi");
        std::fs::write(&garbage, b"RIFF\0\0\0\0AVI this is not a video").unwrap();
        let e = FrameSource::open(garbage.to_str().unwrap(), None, 0.0)
            .err()
            .unwrap();
        assert!(e.to_string().contains("cannot read this as a video"), "{e}");
        let untimed = dir.path().join("untimed.avi");
        write_video(&untimed, 1);
        let e = FrameSource::open(untimed.to_str().unwrap(), None, 0.0)
            .err()
            .unwrap();
        assert!(e.to_string().contains("--video-start"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        let e = FrameSource::open(empty.path().to_str().unwrap(), Some(0), 1.0)
            .err()
            .unwrap();
        assert!(e.to_string().contains("no images"), "{e}");
        // A file with an image's name that is not one: named when it is reached.
        std::fs::write(empty.path().join("broken.png"), b"not a png").unwrap();
        let mut src = FrameSource::open(empty.path().to_str().unwrap(), Some(0), 1.0).unwrap();
        let e = src.next_frame().err().unwrap();
        assert!(
            e.to_string().contains("broken.png") && e.to_string().contains("not an image"),
            "{e}"
        );
    }
}
