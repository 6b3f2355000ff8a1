//! The loss plot, `textual_inversion_loss.png`: the loss CSV drawn as a picture, redrawn
//! each time the CSV is written, so a run can be judged without a plotting tool.
//!
//! A1111 draws no plot; its progress bar shows `loss: <mean>`, the mean of a deque of the
//! last `3 × len(dataset)` step losses (`textual_inversion.py`, `loss_logging`). The plot shows
//! the same running mean (over a trailing window of steps, [`draw_loss_plot`]'s `window`)
//! over each row's loss, and the learning rate in a second panel under it, on the same steps.
//!
//! Drawn directly on an [`RgbImage`]: antialiased lines and dots, text from the public-domain
//! 8×8 bitmap font of the `font8x8` crate. No system font, no plotting library.
//!
//! Rows whose step does not follow the previous row's (a rerun in the same run folder starts
//! again at step 1) begin a new run: lines do not join across it, the running mean restarts,
//! and the earlier runs are drawn in grey under the last one. NaN and infinite values are
//! left out (their row still counts as a step); a plot with no finite loss says so.

use image::{Rgb, RgbImage};

use super::log::LossRow;

/// The picture's width in pixels.
pub const WIDTH: u32 = 800;
/// The picture's height in pixels.
pub const HEIGHT: u32 = 500;
/// The running mean's window when the data set's size is not known: 60 steps, A1111's
/// `3 × len(dataset)` for the 20 pictures a typical set holds.
pub const DEFAULT_WINDOW: usize = 60;

/// A rectangle of pixels, `x0..x1` × `y0..y1`.
#[derive(Debug, Clone, Copy)]
struct Rect {
    x0: i64,
    y0: i64,
    x1: i64,
    y1: i64,
}

/// The loss panel.
const LOSS: Rect = Rect {
    x0: 96,
    y0: 40,
    x1: 780,
    y1: 318,
};
/// The learning-rate panel, under the loss panel on the same steps.
const RATE: Rect = Rect {
    x0: 96,
    y0: 340,
    x1: 780,
    y1: 448,
};

const WHITE: [u8; 3] = [255, 255, 255];
const TEXT: [u8; 3] = [40, 40, 40];
const FRAME: [u8; 3] = [110, 110, 110];
const GRID: [u8; 3] = [232, 232, 232];
/// matplotlib's first three colours, and grey for earlier runs.
const LOSS_DOT: [u8; 3] = [31, 119, 180];
const MEAN_LINE: [u8; 3] = [255, 127, 14];
const RATE_LINE: [u8; 3] = [44, 160, 44];
/// matplotlib's fourth colour: the validation loss.
const VALIDATION_LINE: [u8; 3] = [214, 39, 40];
const EARLIER: [u8; 3] = [150, 150, 150];

/// The ends of an axis sit this many pixels inside the frame, so that dots there show whole.
const INSET: i64 = 5;
/// Glyphs are 8×8; text advances 8 pixels a character.
const GLYPH: i64 = 8;

/// Draws `rows` (in the CSV's order, earlier runs first) as a [`WIDTH`]×[`HEIGHT`] picture:
/// each row's loss as a dot, the mean of the finite losses of the last `window` steps (the
/// row's step and the `window − 1` before it, in the same run; a `window` of 0 counts as 1)
/// as a line, and the learning rate as a step line in a panel under them.
pub fn draw_loss_plot(rows: &[LossRow], window: usize) -> RgbImage {
    let mut canvas = Canvas(RgbImage::from_pixel(WIDTH, HEIGHT, Rgb(WHITE)));
    let runs = split_runs(rows);
    let means = running_means(rows, &runs, window.max(1));

    let steps = rows.iter().map(|r| r.step as f64);
    let x = Axis::new(
        steps.clone().fold(f64::INFINITY, f64::min),
        steps.fold(f64::NEG_INFINITY, f64::max),
        8,
        true,
    );
    let losses = rows
        .iter()
        .flat_map(|r| std::iter::once(r.loss).chain(r.validation_loss))
        .map(f64::from)
        .filter(|v| v.is_finite());
    let loss_axis = Axis::new(
        losses.clone().fold(f64::INFINITY, f64::min),
        losses.fold(f64::NEG_INFINITY, f64::max),
        6,
        false,
    );
    let rates = rows.iter().map(|r| r.learn_rate).filter(|v| plottable(*v));
    // From zero, so that a schedule's steps show in proportion.
    let rate_axis = Axis::new(
        rates.clone().fold(0.0, f64::min),
        rates.fold(0.0, f64::max),
        3,
        false,
    );

    canvas.panel(LOSS, &x, &loss_axis, false);
    canvas.panel(RATE, &x, &rate_axis, true);
    let last = runs.len().saturating_sub(1);
    for (i, run) in runs.iter().enumerate() {
        let (dot, mean, rate) = if i == last {
            (LOSS_DOT, MEAN_LINE, RATE_LINE)
        } else {
            (EARLIER, EARLIER, EARLIER)
        };
        let at = |r: &LossRow, v: f64, axis: &Axis, panel: Rect| {
            (x.pixel_x(r.step as f64, panel), axis.pixel_y(v, panel))
        };
        for r in &rows[run.clone()] {
            if f64::from(r.loss).is_finite() {
                let p = at(r, f64::from(r.loss), &loss_axis, LOSS);
                canvas.line(p, p, 1.6, dot, 0.55, LOSS);
            }
        }
        let points = run
            .clone()
            .map(|j| means[j].map(|m| at(&rows[j], m, &loss_axis, LOSS)));
        canvas.polylines(&pieces(points), 1.1, mean, LOSS);
        // The validation loss, where it was evaluated: a line through marked points.
        let validation = if i == last { VALIDATION_LINE } else { EARLIER };
        let evaluated: Vec<(f64, f64)> = rows[run.clone()]
            .iter()
            .filter_map(|r| {
                let v = f64::from(r.validation_loss?);
                v.is_finite().then(|| at(r, v, &loss_axis, LOSS))
            })
            .collect();
        for &p in &evaluated {
            canvas.line(p, p, 2.6, validation, 0.9, LOSS);
        }
        canvas.polylines(&[evaluated], 1.4, validation, LOSS);
        // Held until the next row: a schedule is a step function.
        let mut steps: Vec<Option<(f64, f64)>> = Vec::new();
        for r in &rows[run.clone()] {
            let p = plottable(r.learn_rate).then(|| at(r, r.learn_rate, &rate_axis, RATE));
            if let (Some(Some(a)), Some(b)) = (steps.last().copied(), p) {
                steps.push(Some((b.0, a.1)));
            }
            steps.push(p);
        }
        canvas.polylines(&pieces(steps.into_iter()), 0.9, rate, RATE);
    }
    if !rows.iter().any(|r| r.loss.is_finite()) {
        let message = "no finite loss yet";
        let cx = (LOSS.x0 + LOSS.x1) / 2 - text_width(message) / 2;
        canvas.text(cx, (LOSS.y0 + LOSS.y1) / 2 - GLYPH / 2, message, TEXT);
    }

    let validated = rows.iter().any(|r| r.validation_loss.is_some());
    let legend_x = canvas.legend(window.max(1), runs.len() > 1, validated);
    let title = "textual inversion loss";
    // Left of the legend when they fit side by side; a long legend goes without it.
    if 12 + text_width(title) + 2 * GLYPH <= legend_x {
        canvas.text(12, 14, title, TEXT);
    }
    let title_x = (LOSS.x0 + LOSS.x1) / 2 - text_width("step") / 2;
    canvas.text(title_x, HEIGHT as i64 - 18, "step", TEXT);
    canvas.text_up(
        10,
        (LOSS.y0 + LOSS.y1) / 2 + text_width("loss") / 2,
        "loss",
        TEXT,
    );
    let label = "learning rate";
    canvas.text_up(
        10,
        (RATE.y0 + RATE.y1) / 2 + text_width(label) / 2,
        label,
        TEXT,
    );
    canvas.0
}

/// [`draw_loss_plot`] encoded as PNG.
///
/// # Errors
/// The PNG encoder's (none for a picture of this size in memory).
pub fn loss_plot_png(rows: &[LossRow], window: usize) -> Result<Vec<u8>, sd_core::CoreError> {
    let plot = draw_loss_plot(rows, window);
    Ok(sd_core::infotext::encode_png_rgb8(
        plot.width(),
        plot.height(),
        plot.as_raw(),
        &[("Software", "sd-textual-inversion")],
    )?)
}

/// The runs of consecutive `Some` points: the lines to draw, broken at each `None`.
fn pieces(points: impl Iterator<Item = Option<(f64, f64)>>) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for p in points {
        match (p, out.last_mut()) {
            (Some(p), Some(last)) => last.push(p),
            (None, Some(last)) if !last.is_empty() => out.push(Vec::new()),
            _ => {}
        }
    }
    out.retain(|piece| !piece.is_empty());
    out
}

/// A learning rate the rate axis can hold (finite as an `f32`, so that spans stay finite).
fn plottable(v: f64) -> bool {
    (v as f32).is_finite()
}

/// The row ranges of each run: a row whose step is not after the previous row's starts one.
fn split_runs(rows: &[LossRow]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..rows.len() {
        if rows[i].step <= rows[i - 1].step {
            runs.push(start..i);
            start = i;
        }
    }
    if !rows.is_empty() {
        runs.push(start..rows.len());
    }
    runs
}

/// For each row, its [`LossRow::mean_loss`] when the trainer gave one, else the mean of the
/// finite losses of its run's rows in the `window` steps that end at it; `None` when there
/// is none.
fn running_means(
    rows: &[LossRow],
    runs: &[std::ops::Range<usize>],
    window: usize,
) -> Vec<Option<f64>> {
    let mut means = vec![None; rows.len()];
    for run in runs {
        let mut first = run.start;
        for i in run.clone() {
            while rows[first].step.saturating_add(window) <= rows[i].step {
                first += 1;
            }
            let (sum, n) = rows[first..=i]
                .iter()
                .map(|r| f64::from(r.loss))
                .filter(|v| v.is_finite())
                .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
            means[i] = match rows[i].mean_loss {
                Some(mean) if mean.is_finite() => Some(f64::from(mean)),
                _ => (n > 0).then(|| sum / n as f64),
            };
        }
    }
    means
}

/// An axis: its span and the distance between ticks.
#[derive(Debug, Clone, Copy)]
struct Axis {
    lo: f64,
    hi: f64,
    tick: f64,
    /// Tick labels in scientific notation (tiny or huge ticks).
    scientific: bool,
}

impl Axis {
    /// An axis holding `min..=max` with about `ticks` ticks at 1, 2 or 5 × 10ⁿ; `integer`
    /// ticks are at least 1 apart and the span is the data's (the step axis), otherwise it is
    /// widened to whole ticks. Empty or single-valued data get a span around it.
    fn new(min: f64, max: f64, ticks: usize, integer: bool) -> Self {
        let (min, max) = if min.is_nan() || max.is_nan() || min > max || (min == 0.0 && max == 0.0)
        {
            (0.0, 1.0)
        } else if min == max {
            let pad = min.abs() * 0.1;
            (min - pad, max + pad)
        } else {
            (min, max)
        };
        let mut tick = nice((max - min) / ticks as f64);
        if integer {
            tick = tick.max(1.0);
        }
        let (lo, hi) = if integer {
            (min, max)
        } else {
            // The tolerance keeps `1e-5 / 5e-6 = 2.0000000000000004` from adding a tick.
            (
                ((min / tick) + 1e-9).floor() * tick,
                ((max / tick) - 1e-9).ceil() * tick,
            )
        };
        let scientific = tick < 1e-4 || lo.abs().max(hi.abs()) >= 1e7;
        Self {
            lo,
            hi,
            tick,
            scientific,
        }
    }

    /// The ticks inside the span.
    fn ticks(&self) -> impl Iterator<Item = f64> + '_ {
        let first = (self.lo / self.tick - 1e-9).ceil();
        (0..50)
            .map(move |k| (first + k as f64) * self.tick)
            .take_while(|v| *v <= self.hi + self.tick * 1e-9)
    }

    /// The tick's label: as many decimals as the tick distance needs.
    fn label(&self, v: f64) -> String {
        // `-0.000` is an artefact of `k × tick`.
        let v = if v.abs() < self.tick * 1e-6 { 0.0 } else { v };
        if v == 0.0 {
            return "0".to_owned();
        }
        let places = |x: f64| x.abs().log10().floor() as i64;
        if self.scientific {
            let digits = (places(v) - places(self.tick)).clamp(0, 6) as usize;
            let text = format!("{v:.digits$e}");
            // `1.0e-5` → `1e-5`, `1.50e-5` → `1.5e-5`.
            match text.split_once('e') {
                Some((mantissa, exponent)) if mantissa.contains('.') => {
                    let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
                    format!("{mantissa}e{exponent}")
                }
                _ => text,
            }
        } else {
            let decimals = (-places(self.tick)).clamp(0, 10) as usize;
            format!("{v:.decimals$}")
        }
    }

    /// `v`'s horizontal pixel in `panel`, [`INSET`] inside its edges.
    fn pixel_x(&self, v: f64, panel: Rect) -> f64 {
        let t = (v - self.lo) / (self.hi - self.lo);
        (panel.x0 + INSET) as f64 + 0.5 + t * (panel.x1 - panel.x0 - 1 - 2 * INSET) as f64
    }

    /// `v`'s vertical pixel in `panel` (up is larger), [`INSET`] inside its edges.
    fn pixel_y(&self, v: f64, panel: Rect) -> f64 {
        let t = (v - self.lo) / (self.hi - self.lo);
        (panel.y1 - INSET) as f64 - 0.5 - t * (panel.y1 - panel.y0 - 1 - 2 * INSET) as f64
    }
}

/// The 1, 2 or 5 × 10ⁿ at or above `raw`.
fn nice(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let f = raw / magnitude;
    let n = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    n * magnitude
}

/// Calls `pixel(x, y, coverage)` for each pixel of `clip` that the line from `a` to `b`,
/// `half_width` either side, covers (by the distance of its centre to the line).
fn cover(
    a: (f64, f64),
    b: (f64, f64),
    half_width: f64,
    clip: Rect,
    mut pixel: impl FnMut(i64, i64, f64),
) {
    let reach = half_width + 1.0;
    let x0 = ((a.0.min(b.0) - reach).floor() as i64).max(clip.x0);
    let x1 = ((a.0.max(b.0) + reach).ceil() as i64).min(clip.x1);
    let y0 = ((a.1.min(b.1) - reach).floor() as i64).max(clip.y0);
    let y1 = ((a.1.max(b.1) + reach).ceil() as i64).min(clip.y1);
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let length2 = dx * dx + dy * dy;
    for y in y0..y1 {
        for x in x0..x1 {
            let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
            let t = if length2 > 0.0 {
                (((px - a.0) * dx + (py - a.1) * dy) / length2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let distance = (px - a.0 - t * dx).hypot(py - a.1 - t * dy);
            let coverage = (half_width + 0.5 - distance).clamp(0.0, 1.0);
            if coverage > 0.0 {
                pixel(x, y, coverage);
            }
        }
    }
}

/// The width of `s` in pixels.
fn text_width(s: &str) -> i64 {
    s.chars().count() as i64 * GLYPH
}

/// The picture being drawn.
struct Canvas(RgbImage);

impl Canvas {
    /// Mixes `colour` into the pixel at `(x, y)` with opacity `alpha`; outside is ignored.
    fn blend(&mut self, x: i64, y: i64, colour: [u8; 3], alpha: f64) {
        let (Ok(x), Ok(y)) = (u32::try_from(x), u32::try_from(y)) else {
            return;
        };
        if x >= self.0.width() || y >= self.0.height() {
            return;
        }
        let pixel = self.0.get_pixel_mut(x, y);
        for (p, c) in pixel.0.iter_mut().zip(colour) {
            *p = (f64::from(*p) * (1.0 - alpha) + f64::from(c) * alpha).round() as u8;
        }
    }

    /// Fills `x0..x1` × `y0..y1`.
    fn fill(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, colour: [u8; 3]) {
        for y in y0..y1 {
            for x in x0..x1 {
                self.blend(x, y, colour, 1.0);
            }
        }
    }

    /// An antialiased line from `a` to `b` (pixel coordinates, a dot when they are equal),
    /// `half_width` pixels either side, clipped to `clip`.
    fn line(
        &mut self,
        a: (f64, f64),
        b: (f64, f64),
        half_width: f64,
        colour: [u8; 3],
        alpha: f64,
        clip: Rect,
    ) {
        cover(a, b, half_width, clip, |x, y, coverage| {
            self.blend(x, y, colour, alpha * coverage);
        });
    }

    /// Antialiased lines through each piece's points, opaque, clipped to `clip`. Each pixel
    /// takes the most any segment covers it, so joints are as smooth as the segments.
    fn polylines(
        &mut self,
        pieces: &[Vec<(f64, f64)>],
        half_width: f64,
        colour: [u8; 3],
        clip: Rect,
    ) {
        let width = (clip.x1 - clip.x0).max(0) as usize;
        let mut mask = vec![0f64; width * (clip.y1 - clip.y0).max(0) as usize];
        for piece in pieces {
            let segments = piece.windows(2).map(|w| (w[0], w[1]));
            // A lone point is a dot.
            let lone = (piece.len() == 1).then(|| (piece[0], piece[0]));
            for (a, b) in segments.chain(lone) {
                cover(a, b, half_width, clip, |x, y, coverage| {
                    let i = (y - clip.y0) as usize * width + (x - clip.x0) as usize;
                    mask[i] = mask[i].max(coverage);
                });
            }
        }
        for (i, &coverage) in mask.iter().enumerate() {
            if coverage > 0.0 {
                let (x, y) = ((i % width) as i64 + clip.x0, (i / width) as i64 + clip.y0);
                self.blend(x, y, colour, coverage);
            }
        }
    }

    /// `s` with its top-left corner at `(x, y)`. Characters outside ASCII draw as `?`.
    fn text(&mut self, x: i64, y: i64, s: &str, colour: [u8; 3]) {
        self.glyphs(s, colour, |i, gx, gy| (x + i * GLYPH + gx, y + gy));
    }

    /// `s` read upwards (turned a quarter to the left), starting at `(x, y)`, its bottom-left
    /// corner.
    fn text_up(&mut self, x: i64, y: i64, s: &str, colour: [u8; 3]) {
        self.glyphs(s, colour, |i, gx, gy| (x + gy, y - i * GLYPH - gx));
    }

    /// Sets each lit pixel of each glyph where `at(index, column, row)` puts it.
    fn glyphs(&mut self, s: &str, colour: [u8; 3], at: impl Fn(i64, i64, i64) -> (i64, i64)) {
        for (i, c) in s.chars().enumerate() {
            let code = if c.is_ascii() {
                c as usize
            } else {
                '?' as usize
            };
            let glyph = font8x8::legacy::BASIC_LEGACY[code];
            for (gy, bits) in glyph.iter().enumerate() {
                for gx in 0..8 {
                    if bits & (1 << gx) != 0 {
                        let (px, py) = at(i as i64, gx, gy as i64);
                        self.blend(px, py, colour, 1.0);
                    }
                }
            }
        }
    }

    /// A panel's grid, frame and tick labels; the step labels go under the `bottom` panel.
    fn panel(&mut self, r: Rect, x: &Axis, y: &Axis, bottom: bool) {
        for v in y.ticks() {
            let py = y.pixel_y(v, r).floor() as i64;
            self.fill(r.x0, py, r.x1, py + 1, GRID);
            self.fill(r.x0 - 4, py, r.x0, py + 1, FRAME);
            let label = y.label(v);
            self.text(
                r.x0 - 7 - text_width(&label),
                py - GLYPH / 2 + 1,
                &label,
                TEXT,
            );
        }
        for v in x.ticks() {
            let px = x.pixel_x(v, r).floor() as i64;
            self.fill(px, r.y0, px + 1, r.y1, GRID);
            if bottom {
                self.fill(px, r.y1, px + 1, r.y1 + 4, FRAME);
                let label = x.label(v);
                self.text(px - text_width(&label) / 2, r.y1 + 8, &label, TEXT);
            }
        }
        self.fill(r.x0, r.y0, r.x1, r.y0 + 1, FRAME);
        self.fill(r.x0, r.y1 - 1, r.x1, r.y1, FRAME);
        self.fill(r.x0, r.y0, r.x0 + 1, r.y1, FRAME);
        self.fill(r.x1 - 1, r.y0, r.x1, r.y1, FRAME);
    }

    /// The legend, right-aligned over the loss panel; returns where it starts.
    fn legend(&mut self, window: usize, earlier: bool, validated: bool) -> i64 {
        let mean = format!("mean of last {window} steps");
        let mut items: Vec<(&str, [u8; 3], bool)> =
            vec![("loss", LOSS_DOT, true), (&mean, MEAN_LINE, false)];
        if validated {
            items.push(("validation", VALIDATION_LINE, false));
        }
        items.push(("learning rate", RATE_LINE, false));
        if earlier {
            items.push(("earlier runs", EARLIER, true));
        }
        let key = 18;
        let gap = 18;
        let total: i64 = items
            .iter()
            .map(|(label, ..)| key + 6 + text_width(label) + gap)
            .sum::<i64>()
            - gap;
        let start = LOSS.x1 - total;
        let mut x = start;
        let y = 14;
        let whole = Rect {
            x0: 0,
            y0: 0,
            x1: WIDTH as i64,
            y1: HEIGHT as i64,
        };
        for (label, colour, dot) in items {
            let mid = (x as f64 + key as f64 / 2.0, y as f64 + 3.5);
            if dot {
                self.line(mid, mid, 2.0, colour, 0.8, whole);
            } else {
                let (a, b) = ((x as f64, mid.1), ((x + key) as f64, mid.1));
                self.line(a, b, 1.1, colour, 1.0, whole);
            }
            self.text(x + key + 6, y, label, TEXT);
            x += key + 6 + text_width(label) + gap;
        }
        start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(step: usize, loss: f32, learn_rate: f64) -> LossRow {
        LossRow {
            step,
            epoch: 0,
            epoch_step: step.saturating_sub(1),
            loss,
            learn_rate,
            validation_loss: None,
            mean_loss: None,
        }
    }

    /// Whether the pixel is close to `colour` (a dot or line drawn at full strength).
    fn is(image: &RgbImage, x: i64, y: i64, colour: [u8; 3], tolerance: i32) -> bool {
        let p = image.get_pixel(x as u32, y as u32).0;
        p.iter()
            .zip(colour)
            .all(|(&a, b)| (i32::from(a) - i32::from(b)).abs() <= tolerance)
    }

    /// Pixels of the loss panel's inside whose colour is bluish (the dots: blue over white,
    /// not grey, not orange, not green).
    fn bluish(image: &RgbImage, y0: i64, y1: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        for y in y0..y1 {
            for x in LOSS.x0 + 1..LOSS.x1 - 1 {
                let [r, g, b] = image.get_pixel(x as u32, y as u32).0;
                if i32::from(b) - i32::from(r) > 40 && b > g {
                    out.push((x, y));
                }
            }
        }
        out
    }

    #[test]
    fn a_high_loss_is_drawn_high_and_where_its_step_is() {
        // 100 steps at 0.05 and 0.15 in turn (their mean, drawn over them, runs between),
        // step 50 at 1.0.
        let rows: Vec<LossRow> = (1..=100)
            .map(|s| row(s, [0.05, 0.15][s % 2], 0.005))
            .map(|r| LossRow {
                loss: if r.step == 50 { 1.0 } else { r.loss },
                ..r
            })
            .collect();
        let image = draw_loss_plot(&rows, 10);
        assert_eq!(image.dimensions(), (WIDTH, HEIGHT));
        if let Some(path) = std::env::var_os("SD_LOSS_PLOT_SPIKE") {
            image.save(path).expect("save");
        }
        let mid = (LOSS.y0 + LOSS.y1) / 2;
        let upper = bluish(&image, LOSS.y0 + 1, mid);
        assert!(!upper.is_empty(), "no dot in the upper half");
        // Every dot up there is the one at step 50, in the middle of the steps.
        let x = Axis::new(1.0, 100.0, 8, true).pixel_x(50.0, LOSS);
        assert!(
            upper.iter().all(|&(px, _)| (px as f64 - x).abs() < 3.0),
            "{upper:?}"
        );
        // Its centre is at the top of the axis: 1.0 is the top tick.
        let axis = Axis::new(0.05, 1.0, 6, false);
        assert_eq!(axis.hi, 1.0);
        let y = axis.pixel_y(1.0, LOSS);
        assert!(
            upper.iter().any(|&(_, py)| (py as f64 - y).abs() < 1.0),
            "{upper:?}"
        );
        // The low losses fill the lower half, from the first step to the last.
        let lower = bluish(&image, mid, LOSS.y1 - 1);
        let xs: Vec<i64> = lower.iter().map(|p| p.0).collect();
        assert!(xs.iter().min().is_some_and(|&m| m < LOSS.x0 + 16), "{xs:?}");
        assert!(xs.iter().max().is_some_and(|&m| m > LOSS.x1 - 16), "{xs:?}");
    }

    #[test]
    fn the_running_mean_is_over_the_last_window_steps_of_the_run() {
        let rows = [
            row(1, 1.0, 0.1),
            row(2, 3.0, 0.1),
            row(3, f32::NAN, 0.1),
            row(4, 5.0, 0.1),
            // A rerun: starts again.
            row(1, 7.0, 0.1),
            row(2, 9.0, 0.1),
        ];
        let runs = split_runs(&rows);
        assert_eq!(runs, [0..4, 4..6]);
        let means = running_means(&rows, &runs, 2);
        assert_eq!(
            means,
            [
                Some(1.0),
                Some(2.0),
                Some(3.0),
                Some(5.0),
                Some(7.0),
                Some(8.0)
            ]
        );
        let means = running_means(&rows, &runs, 1000);
        assert_eq!(means[3], Some(3.0));
    }

    #[test]
    fn degenerate_series_draw_without_panicking() {
        let cases: Vec<Vec<LossRow>> = vec![
            vec![],
            vec![row(1, 0.2, 0.005)],
            vec![row(7, 0.2, 0.0); 3],
            (1..=5).map(|s| row(s, 0.2, 0.0)).collect(),
            vec![
                row(1, f32::NAN, f64::NAN),
                row(2, f32::INFINITY, f64::INFINITY),
            ],
            vec![row(1, f32::NEG_INFINITY, 1e300), row(2, f32::MAX, -1e-300)],
            vec![row(1, -f32::MAX, 0.005), row(2, f32::MAX, 0.005)],
            (0..5000)
                .map(|s| row(s, (s % 7) as f32 * 0.01, 1e-6))
                .collect(),
        ];
        for rows in &cases {
            for window in [0, 1, 60, usize::MAX] {
                let image = draw_loss_plot(rows, window);
                assert_eq!(image.dimensions(), (WIDTH, HEIGHT));
            }
        }
        // No dot for a NaN: the loss panel has no blue.
        let image = draw_loss_plot(&[row(1, f32::NAN, 0.005)], 60);
        assert!(bluish(&image, LOSS.y0 + 1, LOSS.y1 - 1).is_empty());
        // A learning rate of 0 is drawn on the axis's zero.
        let image = draw_loss_plot(&[row(1, 0.2, 0.0), row(2, 0.2, 0.0)], 60);
        let axis = Axis::new(0.0, 0.0, 3, false);
        let y = axis.pixel_y(0.0, RATE).floor() as i64;
        let x = (RATE.x0 + RATE.x1) / 2;
        assert!(
            is(&image, x, y, RATE_LINE, 30),
            "{:?}",
            image.get_pixel(x as u32, y as u32)
        );
    }

    #[test]
    fn tick_labels_read_as_numbers() {
        let axis = Axis::new(0.05, 0.3, 6, false);
        let labels: Vec<String> = axis.ticks().map(|v| axis.label(v)).collect();
        assert_eq!(labels, ["0.05", "0.10", "0.15", "0.20", "0.25", "0.30"]);
        let axis = Axis::new(0.0, 0.005, 3, false);
        let labels: Vec<String> = axis.ticks().map(|v| axis.label(v)).collect();
        assert_eq!(labels, ["0", "0.002", "0.004", "0.006"]);
        let axis = Axis::new(0.0, 1e-5, 3, false);
        let labels: Vec<String> = axis.ticks().map(|v| axis.label(v)).collect();
        assert_eq!(labels, ["0", "5e-6", "1e-5"]);
        let axis = Axis::new(1.0, 300.0, 8, true);
        let labels: Vec<String> = axis.ticks().map(|v| axis.label(v)).collect();
        assert_eq!(labels, ["50", "100", "150", "200", "250", "300"]);
    }

    /// A realistic run drawn to `$SD_LOSS_PLOT` (to look at it): 300 noisy steps, the
    /// learning rate dropping from 0.005 to 0.001 at step 150.
    #[test]
    fn a_realistic_run_draws() {
        let mut state = 12345u64;
        let mut noise = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as f32 / (1u64 << 31) as f32
        };
        let rows: Vec<LossRow> = (1..=300)
            .map(|s| {
                let rate = if s <= 150 { 0.005 } else { 0.001 };
                row(s, 0.05 + 0.25 * noise() * noise(), rate)
            })
            .collect();
        let png = loss_plot_png(&rows, 60).expect("png");
        let back = image::load_from_memory(&png).expect("decodes");
        assert_eq!((back.width(), back.height()), (WIDTH, HEIGHT));
        if let Some(path) = std::env::var_os("SD_LOSS_PLOT") {
            std::fs::write(path, &png).expect("write");
        }
        // An earlier run of 120 steps in the same folder, one NaN step, written every 2 steps.
        let rerun: Vec<LossRow> = (1..=120)
            .map(|s| row(s, 0.1 + 0.2 * noise(), 0.002))
            .chain(rows.iter().map(|&r| LossRow {
                loss: if r.step == 200 { f32::NAN } else { r.loss },
                ..r
            }))
            .filter(|r| r.step % 2 == 0)
            .collect();
        let image = draw_loss_plot(&rerun, 60);
        if let Some(path) = std::env::var_os("SD_LOSS_PLOT_RERUN") {
            image.save(path).expect("save");
        }
    }
}
