//! Stride-1, padding-1 3×3 convolutions by Winograd's F(4×4, 3×3): each 4×4 block of output
//! ("tile") costs 36 multiplications per (input, output) channel pair instead of the direct
//! convolution's 144, at the price of three cheap linear transforms ([`transforms`]).
//!
//! The kernel is transformed once per call (`U = G g Gᵀ`, packed for the products). Then
//! rayon tasks take [`TASK_TILES`] tiles each, and for them:
//! 1. every tile's 6×6 input patch, for all input channels, becomes 36 channel vectors
//!    `V = Bᵀ d B`;
//! 2. 36 matrix products `M[p] = V[p] · U[p]`, `[tiles, in] × [in, out]` ([`products`]);
//! 3. every tile's `Y = Aᵀ M A` goes to a buffer of tile outputs;
//!
//! and a last parallel pass adds the bias and puts each tile's 4×4 block in the NCHW output
//! (rayon over blocks of output channels). A task's transformed inputs and products stay in
//! the caches; the tile outputs are written in chunks of at most [`CHUNK_FLOATS`] floats.
//!
//! The same function computes the input gradient of such a convolution: a stride-1,
//! padding-1 convolution of the output gradient with the kernel turned by 180° and its
//! input and output channels swapped ([`KernelOrientation::Transposed`]).
//!
//! Accuracy: F(4×4, 3×3) rounds more than the direct sum (its transforms scale values by
//! up to 8 and 1/24); the tests measure it against f64 at SD's shapes and weight scales.
//! A non-finite input value spreads to its whole output tile (as NaN where the direct sum
//! would give ±∞); the pipelines refuse non-finite values anyway.

mod products;
#[cfg(test)]
mod tests;
mod transforms;

use burn::backend::flex::FlexTensor;
use burn::tensor::TensorData;
use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

use super::{lengthen, values};
use products::{MR, multiply, pack_kernel};
use transforms::{input_1d, output_1d};

/// The side of an output tile.
const OUT: usize = 4;
/// The side of an input tile (and of a transformed tile).
const TILE: usize = 6;
/// The entries of a transformed tile: one matrix product each.
const POINTS: usize = TILE * TILE;
/// The floats the tile outputs of one chunk may take (2 Mi floats, 8 MiB: more only adds
/// to the peak memory of a training step).
const CHUNK_FLOATS: usize = 2 << 20;
/// Tiles per rayon task: eight groups of the products' micro-kernel.
const TASK_TILES: usize = 8 * MR;
/// The fewest tiles worth transforming the kernel for: below it the 36 matrix products
/// reuse each transformed weight too few times, and a direct convolution is faster.
pub(crate) const MIN_TILES: usize = 64;

/// The shape of a stride-1, padding-1 3×3 convolution: `x: [batch, in_channels, height,
/// width]` to `[batch, out_channels, height, width]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Conv3x3Shape {
    /// Batch elements.
    pub batch: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Rows of the input and the output.
    pub height: usize,
    /// Columns of the input and the output.
    pub width: usize,
}

impl Conv3x3Shape {
    fn tiles_across(&self) -> usize {
        self.width.div_ceil(OUT)
    }

    fn tiles_per_image(&self) -> usize {
        self.height.div_ceil(OUT) * self.tiles_across()
    }

    /// The output tiles of the whole batch.
    pub fn tiles(&self) -> usize {
        self.batch * self.tiles_per_image()
    }

    /// Where tile `tile` is: its batch element and its top-left output row and column.
    fn place(&self, tile: usize) -> (usize, usize, usize) {
        let per_image = self.tiles_per_image();
        let (batch, rest) = (tile / per_image, tile % per_image);
        let across = self.tiles_across();
        (batch, (rest / across) * OUT, (rest % across) * OUT)
    }

    /// The tiles per chunk: as many as [`CHUNK_FLOATS`] allows, in whole tasks.
    fn chunk_tiles(&self) -> usize {
        let per_task = OUT * OUT * self.out_channels * TASK_TILES;
        (CHUNK_FLOATS / per_task.max(1)).max(1) * TASK_TILES
    }
}

/// Which kernel a [`conv3x3`] applies, given `weight: [a, b, 3, 3]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KernelOrientation {
    /// The convolution's own: `a` output channels, `b` input channels.
    Forward,
    /// The input gradient's: each 3×3 kernel turned by 180°, `a` the input channels (the
    /// forward convolution's outputs) and `b` the output channels.
    Transposed,
}

/// The convolution of `x` (NCHW, `shape`) with `weight` (a 3×3 kernel per channel pair,
/// read in `orientation`), plus `bias` per output channel; padding 1, stride 1.
pub(crate) fn conv3x3(
    x: &[f32],
    shape: Conv3x3Shape,
    weight: &[f32],
    orientation: KernelOrientation,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    debug_assert_eq!(
        x.len(),
        shape.batch * shape.in_channels * shape.height * shape.width
    );
    debug_assert_eq!(weight.len(), shape.in_channels * shape.out_channels * 9);
    debug_assert!(bias.is_none_or(|b| b.len() == shape.out_channels));
    Arch::new().dispatch(Convolution {
        x,
        shape,
        weight,
        orientation,
        bias,
    })
}

/// [`conv3x3`]'s arguments, run on the CPU's widest SIMD.
struct Convolution<'a> {
    x: &'a [f32],
    shape: Conv3x3Shape,
    weight: &'a [f32],
    orientation: KernelOrientation,
    bias: Option<&'a [f32]>,
}

impl WithSimd for Convolution<'_> {
    type Output = Vec<f32>;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> Vec<f32> {
        let Self {
            x,
            shape,
            weight,
            orientation,
            bias,
        } = self;
        let (inputs, outputs) = (shape.in_channels, shape.out_channels);
        let mut out = vec![0f32; shape.batch * outputs * shape.height * shape.width];
        let tiles = shape.tiles();
        if tiles == 0 || inputs == 0 || outputs == 0 {
            if let Some(bias) = bias {
                let plane = shape.height * shape.width;
                for (values, &b) in out.chunks_mut(plane.max(1)).zip(bias.iter().cycle()) {
                    values.fill(b);
                }
            }
            return out;
        }
        let mut buffers = CallBuffers::take();
        let packed = pack_kernel(
            simd,
            weight,
            inputs,
            outputs,
            orientation,
            &mut buffers.kernel,
        );
        let kernel = &buffers.kernel[..packed];
        let per_tile = OUT * OUT * outputs;
        let chunk = shape.chunk_tiles().min(tiles);
        lengthen(&mut buffers.tile_outputs, chunk * per_tile);
        let all_tile_outputs = &mut buffers.tile_outputs;
        for first in (0..tiles).step_by(chunk) {
            let count = chunk.min(tiles - first);
            let tile_outputs = &mut all_tile_outputs[..count * per_tile];
            tile_outputs
                .par_chunks_mut(TASK_TILES * per_tile)
                .enumerate()
                .for_each(|(task, y)| {
                    let mut buffers = TASK_BUFFERS.take();
                    buffers.reserve(inputs, outputs);
                    let first = first + task * TASK_TILES;
                    simd.vectorize(Task {
                        x,
                        shape,
                        kernel,
                        first,
                        buffers: &mut buffers,
                        y,
                    });
                    TASK_BUFFERS.set(buffers);
                });
            scatter(tile_outputs, shape, first, bias, &mut out);
        }
        buffers.keep();
        out
    }
}

/// The large buffers of one call, kept between calls by each thread (most calls come from
/// the same thread, with the same sizes).
#[derive(Default)]
struct CallBuffers {
    /// The packed kernel.
    kernel: Vec<f32>,
    /// The tile outputs of a chunk.
    tile_outputs: Vec<f32>,
}

thread_local! {
    /// This thread's buffers between calls.
    static CALL_BUFFERS: std::cell::Cell<CallBuffers> = std::cell::Cell::new(CallBuffers::default());
}

impl CallBuffers {
    /// The thread's buffers (empty if a call on this thread holds them).
    fn take() -> Self {
        CALL_BUFFERS.take()
    }

    /// Back to the thread, for the next call.
    fn keep(self) {
        CALL_BUFFERS.set(self);
    }
}

thread_local! {
    /// This thread's task buffers between tasks and calls (allocated once per thread, not
    /// per task: repeated large allocations and frees raise glibc's mmap threshold and
    /// leave the freed memory resident).
    static TASK_BUFFERS: std::cell::Cell<TaskBuffers> =
        std::cell::Cell::new(TaskBuffers::default());
}

/// The working memory of one task.
#[derive(Default)]
struct TaskBuffers {
    /// [`input_tile`]'s scratch.
    scratch: Vec<f32>,
    /// One tile's transformed input, `[36][in]`.
    tile: Vec<f32>,
    /// The task's transformed inputs, packed `[group][36][in][MR]`.
    packed: Vec<f32>,
    /// The task's products, `[tile][36][out]`.
    products: Vec<f32>,
    /// [`output_tile`]'s scratch.
    output_scratch: Vec<f32>,
}

impl TaskBuffers {
    /// Lengthens the buffers to what a task of `inputs` and `outputs` channels uses (their
    /// starts; the task slices them).
    fn reserve(&mut self, inputs: usize, outputs: usize) {
        lengthen(&mut self.scratch, POINTS * (patch_stride(inputs) + inputs));
        lengthen(&mut self.tile, POINTS * inputs);
        lengthen(&mut self.packed, TASK_TILES * POINTS * inputs);
        lengthen(&mut self.products, TASK_TILES * POINTS * outputs);
        lengthen(&mut self.output_scratch, TILE * OUT * outputs);
    }
}

/// One task: the tiles `first..` (as many as `y` holds, `[tile][16][out]`); transformed
/// inputs, products, transformed outputs into `y`. (A struct rather than a closure, so that
/// the whole body is compiled for the SIMD `pulp` chose.)
struct Task<'a> {
    x: &'a [f32],
    shape: Conv3x3Shape,
    kernel: &'a [f32],
    first: usize,
    buffers: &'a mut TaskBuffers,
    y: &'a mut [f32],
}

impl WithSimd for Task<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self {
            x,
            shape,
            kernel,
            first,
            buffers,
            y,
        } = self;
        run_task(simd, x, shape, kernel, first, buffers, y);
    }
}

/// [`Task`]'s body.
#[inline(always)]
fn run_task<S: Simd>(
    simd: S,
    x: &[f32],
    shape: Conv3x3Shape,
    kernel: &[f32],
    first: usize,
    buffers: &mut TaskBuffers,
    y: &mut [f32],
) {
    let (inputs, outputs) = (shape.in_channels, shape.out_channels);
    let per_tile = OUT * OUT * outputs;
    let tiles = y.len() / per_tile;
    let groups = tiles.div_ceil(MR);
    let packed = &mut buffers.packed[..groups * POINTS * inputs * MR];
    for index in 0..tiles {
        input_tile(
            x,
            shape,
            first + index,
            &mut buffers.scratch[..POINTS * (patch_stride(inputs) + inputs)],
            &mut buffers.tile[..POINTS * inputs],
        );
        let (group, slot) = (index / MR, index % MR);
        let group = &mut packed[group * POINTS * inputs * MR..][..POINTS * inputs * MR];
        for (row, &value) in group
            .chunks_exact_mut(MR)
            .zip(&buffers.tile[..POINTS * inputs])
        {
            row[slot] = value;
        }
    }
    let products = &mut buffers.products[..tiles * POINTS * outputs];
    multiply(simd, packed, kernel, inputs, outputs, products);
    for (m, y) in products
        .chunks_exact(POINTS * outputs)
        .zip(y.chunks_exact_mut(per_tile))
    {
        output_tile(m, &mut buffers.output_scratch[..TILE * OUT * outputs], y);
    }
}

/// The distance between the channel vectors of [`input_tile`]'s patch: one cache line more
/// than the channels, so that the 36 vectors it fills at once do not share cache sets (SD's
/// channel counts are multiples of 64 floats, 256 bytes).
fn patch_stride(channels: usize) -> usize {
    channels + 16
}

/// Tile `tile`'s transformed input `V = Bᵀ d B` into `v` (`[36][in]`); `scratch` holds
/// `36 · (patch_stride(in) + in)` floats.
#[inline(always)]
fn input_tile(x: &[f32], shape: Conv3x3Shape, tile: usize, scratch: &mut [f32], v: &mut [f32]) {
    let channels = shape.in_channels;
    let (batch, row0, col0) = shape.place(tile);
    let (height, width) = (shape.height, shape.width);
    let stride = patch_stride(channels);
    let (patch, columns) = scratch.split_at_mut(POINTS * stride);
    // The 6×6 patch around the tile (one row and column of padding before it), channel
    // vectors: `patch[(i · 6 + j) · stride + c]`.
    let plane_len = height * width;
    let image = &x[batch * channels * plane_len..(batch + 1) * channels * plane_len];
    let interior = col0 >= 1 && col0 + TILE - 1 <= width;
    for (c, plane) in image.chunks_exact(plane_len).enumerate() {
        for i in 0..TILE {
            let at = |j: usize| (i * TILE + j) * stride + c;
            let row = (row0 + i).checked_sub(1).filter(|&r| r < height);
            match row {
                Some(r) if interior => {
                    let line = &plane[r * width + col0 - 1..r * width + col0 + TILE - 1];
                    for (j, &value) in line.iter().enumerate() {
                        patch[at(j)] = value;
                    }
                }
                Some(r) => {
                    for j in 0..TILE {
                        let col = (col0 + j).checked_sub(1).filter(|&q| q < width);
                        patch[at(j)] = col.map_or(0.0, |q| plane[r * width + q]);
                    }
                }
                None => {
                    for j in 0..TILE {
                        patch[at(j)] = 0.0;
                    }
                }
            }
        }
    }
    // Down the columns: `columns[(j · 6 + a) · in]` = (Bᵀ d)[a][j].
    for (j, out) in columns.chunks_exact_mut(TILE * channels).enumerate() {
        let d = std::array::from_fn(|i| &patch[(i * TILE + j) * stride..][..channels]);
        input_1d(d, rows_mut(out, channels));
    }
    // Along the rows: `v[(a · 6 + b) · in]` = (Bᵀ d B)[a][b].
    for (a, out) in v.chunks_exact_mut(TILE * channels).enumerate() {
        let t = std::array::from_fn(|j| &columns[(j * TILE + a) * channels..][..channels]);
        input_1d(t, rows_mut(out, channels));
    }
}

/// A tile's output `Y = Aᵀ M A` into `y` (`[16][out]`, row-major 4×4 of channel vectors),
/// from its products `m` (`[36][out]`); `scratch` holds `6 · 4 · out` floats.
#[inline(always)]
fn output_tile(m: &[f32], scratch: &mut [f32], y: &mut [f32]) {
    let channels = y.len() / (OUT * OUT);
    let point = |p: usize| &m[p * channels..][..channels];
    // Down the columns: `scratch[(b · 4 + r) · out]` = (Aᵀ M)[r][b].
    for (b, out) in scratch.chunks_exact_mut(OUT * channels).enumerate() {
        output_1d(
            std::array::from_fn(|a| point(a * TILE + b)),
            rows_mut(out, channels),
        );
    }
    // Along the rows: `y[(r · 4 + s) · out]` = (Aᵀ M A)[r][s].
    for (r, out) in y.chunks_exact_mut(OUT * channels).enumerate() {
        let t = std::array::from_fn(|b| &scratch[(b * OUT + r) * channels..][..channels]);
        output_1d(t, rows_mut(out, channels));
    }
}

/// The tiles `first..` (their outputs `[tiles][16][out]`) plus `bias`, to their places in
/// `out` (NCHW), in parallel over blocks of up to 16 output channels (one cache line of a
/// tile's channel vector per task).
fn scatter(
    tile_outputs: &[f32],
    shape: Conv3x3Shape,
    first: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let channels = shape.out_channels;
    let (height, width) = (shape.height, shape.width);
    let plane = height * width;
    let block = [16, 8, 4, 2, 1]
        .into_iter()
        .find(|b| channels.is_multiple_of(*b))
        .unwrap_or(1);
    let per_tile = OUT * OUT * channels;
    let count = tile_outputs.len() / per_tile;
    let per_image = shape.tiles_per_image();
    out.par_chunks_mut(block * plane)
        .enumerate()
        .for_each(|(index, planes)| {
            let (image, k0) = (index * block / channels, index * block % channels);
            let tiles = first.max(image * per_image)..(first + count).min((image + 1) * per_image);
            for tile in tiles {
                let (_, row0, col0) = shape.place(tile);
                let y = &tile_outputs[(tile - first) * per_tile..][..per_tile];
                for r in 0..OUT.min(height - row0) {
                    for s in 0..OUT.min(width - col0) {
                        let at = (row0 + r) * width + col0 + s;
                        let values = &y[(r * OUT + s) * channels + k0..][..block];
                        for (kk, &value) in values.iter().enumerate() {
                            let b = bias.map_or(0.0, |bias| bias[k0 + kk]);
                            planes[kk * plane + at] = value + b;
                        }
                    }
                }
            }
        });
}

/// `N` consecutive rows of `len` floats of `buffer`, as separate slices.
#[inline(always)]
fn rows_mut<const N: usize>(buffer: &mut [f32], len: usize) -> [&mut [f32]; N] {
    // The callers' buffers hold exactly `N` rows; a missing row would be empty, not a panic.
    let mut rows = buffer.chunks_exact_mut(len.max(1));
    std::array::from_fn(|_| rows.next().unwrap_or_default())
}

/// The Winograd shape of `conv(x)` with `weight: [out, in, kh, kw]` and `options`, where this
/// kernel applies and pays: a 3×3 kernel, stride 1, padding 1, no dilation, one group, at
/// least 64 input and output channels (below, the products are too thin), at least
/// [`MIN_TILES`] output tiles, and a bias (of `bias_len` values, if any) per output channel.
pub(crate) fn winograd_shape(
    x: [usize; 4],
    weight: [usize; 4],
    bias_len: Option<usize>,
    options: &burn::tensor::ops::ConvOptions<2>,
) -> Option<Conv3x3Shape> {
    let [batch, in_channels, height, width] = x;
    let [out_channels, weight_in, kernel_height, kernel_width] = weight;
    let shape = Conv3x3Shape {
        batch,
        in_channels,
        out_channels,
        height,
        width,
    };
    let applies = [kernel_height, kernel_width] == [3, 3]
        && weight_in == in_channels
        && options.stride == [1, 1]
        && options.padding == [(1, 1), (1, 1)]
        && options.dilation == [1, 1]
        && options.groups == 1
        && bias_len.is_none_or(|len| len == out_channels)
        && in_channels >= 64
        && out_channels >= 64
        && shape.tiles() >= MIN_TILES;
    applies.then_some(shape)
}

/// [`conv3x3`] on burn-flex tensors (any layout; f32 or converted to it), returning a
/// contiguous f32 `[batch, out, height, width]` tensor.
pub(crate) fn conv3x3_flex(
    x: &FlexTensor,
    shape: Conv3x3Shape,
    weight: &FlexTensor,
    orientation: KernelOrientation,
    bias: Option<&FlexTensor>,
) -> FlexTensor {
    use super::contiguous_f32;

    let (x, weight) = (contiguous_f32(x), contiguous_f32(weight));
    let bias = bias.map(contiguous_f32);
    let out = conv3x3(
        values(&x),
        shape,
        values(&weight),
        orientation,
        bias.as_ref().map(values),
    );
    FlexTensor::from_data(TensorData::new(
        out,
        [shape.batch, shape.out_channels, shape.height, shape.width],
    ))
}
