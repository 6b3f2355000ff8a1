//! Dynamic loss scaling for networks computing in f16 (PyTorch's `torch.cuda.amp.GradScaler`,
//! which A1111's `train_embedding` uses): the loss is multiplied by a large power of two
//! before the backward pass, so that small gradients do not vanish below f16's smallest
//! values on their way through the frozen networks, and the gradient is divided by it again
//! in f32. Powers of two make both exact.
//!
//! GradScaler's defaults: start at 2¹⁶, halve on an overflow, double after 2000 micro-batches
//! without one. Where PyTorch then skips the optimizer step, the trainer recomputes the
//! micro-batch at the halved scale, so every step learns from every picture.

/// The scale's state across a run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LossScale {
    scale: f32,
    clean: u32,
}

impl LossScale {
    /// GradScaler's `init_scale`.
    const INITIAL: f32 = 65536.0;
    /// GradScaler's `growth_interval`.
    const GROWTH_INTERVAL: u32 = 2000;
    /// Below this an overflow is not the scale's fault: the run has diverged.
    const SMALLEST: f32 = 1.0;

    /// A scaler at GradScaler's starting scale.
    pub(crate) fn new() -> Self {
        Self {
            scale: Self::INITIAL,
            clean: 0,
        }
    }

    /// The factor the next loss is multiplied by.
    pub(crate) fn scale(&self) -> f32 {
        self.scale
    }

    /// A micro-batch's gradient overflowed: halves the scale. `false` when the scale is
    /// already at its floor (the gradient itself is not finite: stop).
    pub(crate) fn back_off(&mut self) -> bool {
        self.clean = 0;
        if self.scale <= Self::SMALLEST {
            return false;
        }
        self.scale *= 0.5;
        true
    }

    /// A micro-batch's gradient was finite: after [`Self::GROWTH_INTERVAL`] in a row the
    /// scale doubles.
    pub(crate) fn record_clean(&mut self) {
        self.clean += 1;
        if self.clean == Self::GROWTH_INTERVAL {
            self.clean = 0;
            self.scale *= 2.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_on_overflow_and_doubles_after_two_thousand_clean_batches() {
        let mut s = LossScale::new();
        assert_eq!(s.scale(), 65536.0);
        assert!(s.back_off());
        assert_eq!(s.scale(), 32768.0);
        for _ in 0..1999 {
            s.record_clean();
        }
        assert_eq!(s.scale(), 32768.0);
        s.record_clean();
        assert_eq!(s.scale(), 65536.0);
        // An overflow resets the count.
        for _ in 0..1999 {
            s.record_clean();
        }
        assert!(s.back_off());
        s.record_clean();
        assert_eq!(s.scale(), 32768.0);
    }

    #[test]
    fn gives_up_at_the_floor() {
        let mut s = LossScale::new();
        let mut halvings = 0;
        while s.back_off() {
            halvings += 1;
        }
        assert_eq!(halvings, 16);
        assert_eq!(s.scale(), 1.0);
    }
}
