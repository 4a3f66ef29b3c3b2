//! A small fixed-layout binary encoding for the records the microsystem's
//! own services write to node storage (the saga coordinator's log, the
//! participants' logs). Little-endian integers, a tag byte per record.
//! JSON would do as well; this is only cheaper, which matters at the
//! issue's 1,000 orders a second (several records per order).
//!
//! Several records written for one state change are appended as one
//! storage record, one after another. Storage never corrupts, so a record
//! that does not decode is a bug: decoding panics.

use crate::domain::{CancelReason, CardOutcome, Line, Lines, OrderId, ProductId};
use sim::kit::saga::StepOutcome;

/// Builds one record.
#[derive(Default)]
pub struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    /// Continues `bytes` (records are appended one after another; the next
    /// byte written is the new record's tag).
    pub fn onto(bytes: Vec<u8>) -> Writer {
        Writer { bytes }
    }

    /// Appends one byte.
    pub fn u8(mut self, value: u8) -> Writer {
        self.bytes.push(value);
        self
    }

    /// Appends a `u32`.
    pub fn u32(mut self, value: u32) -> Writer {
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// Appends a `u64`.
    pub fn u64(mut self, value: u64) -> Writer {
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// Appends an `i64`.
    pub fn i64(mut self, value: i64) -> Writer {
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// Appends an order's lines (count, then product, quantity, price).
    pub fn lines(mut self, lines: &[Line]) -> Writer {
        self = self.u32(lines.len() as u32);
        for line in lines {
            self = self.u32(line.product.0).u32(line.quantity).u64(line.unit_price_cents);
        }
        self
    }

    /// The record.
    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// Reads one record back.
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// A reader over one or more records written one after another (each
    /// starting with its tag, read with [`Reader::u8`]).
    pub fn over(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    /// Whether every byte has been read.
    pub fn is_done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn take<const N: usize>(&mut self) -> [u8; N] {
        let slice = self.bytes.get(self.at..self.at + N).expect("a record long enough");
        self.at += N;
        slice.try_into().expect("N bytes")
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }

    /// Reads a `u32`.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }

    /// Reads a `u64`.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }

    /// Reads an `i64`.
    pub fn i64(&mut self) -> i64 {
        i64::from_le_bytes(self.take())
    }

    /// Reads an order id.
    pub fn order(&mut self) -> OrderId {
        OrderId(self.u64())
    }

    /// Reads lines written by [`Writer::lines`].
    pub fn lines(&mut self) -> Lines {
        let count = self.u32() as usize;
        (0..count)
            .map(|_| Line {
                product: ProductId(self.u32()),
                quantity: self.u32(),
                unit_price_cents: self.u64(),
            })
            .collect()
    }
}

/// A cancellation reason as one byte.
pub fn reason_code(reason: CancelReason) -> u8 {
    match reason {
        CancelReason::OutOfStock => 0,
        CancelReason::PaymentDeclined => 1,
        CancelReason::PaymentFailed => 2,
        CancelReason::ShippingFailed => 3,
    }
}

/// The reason [`reason_code`] encoded.
pub fn reason_from(code: u8) -> CancelReason {
    match code {
        0 => CancelReason::OutOfStock,
        1 => CancelReason::PaymentDeclined,
        2 => CancelReason::PaymentFailed,
        3 => CancelReason::ShippingFailed,
        _ => panic!("unknown cancel reason code {code}"),
    }
}

/// A card outcome as one byte.
pub fn card_code(card: CardOutcome) -> u8 {
    match card {
        CardOutcome::Approve => 0,
        CardOutcome::Decline => 1,
    }
}

/// The card outcome [`card_code`] encoded.
pub fn card_from(code: u8) -> CardOutcome {
    if code == 0 { CardOutcome::Approve } else { CardOutcome::Decline }
}

/// A participant's step outcome as one byte.
pub fn outcome_code(outcome: StepOutcome) -> u8 {
    match outcome {
        StepOutcome::Executed => 0,
        StepOutcome::Failed => 1,
        StepOutcome::Undone => 2,
        StepOutcome::Voided => 3,
    }
}

/// The outcome [`outcome_code`] encoded.
pub fn outcome_from(code: u8) -> StepOutcome {
    match code {
        0 => StepOutcome::Executed,
        1 => StepOutcome::Failed,
        2 => StepOutcome::Undone,
        3 => StepOutcome::Voided,
        _ => panic!("unknown step outcome code {code}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_as_written() {
        // Goal: every field type round-trips, in order.
        let lines = vec![
            Line { product: ProductId(3), quantity: 2, unit_price_cents: 999 },
            Line { product: ProductId(7), quantity: 1, unit_price_cents: 5 },
        ];
        let bytes = Writer::onto(Vec::new()).u8(9).u8(4).u32(77).u64(1 << 40).i64(-5).lines(&lines);
        let bytes = Writer::onto(bytes.finish()).u8(2).u64(3).finish();
        let mut reader = Reader::over(&bytes);
        assert_eq!(reader.u8(), 9);
        assert_eq!((reader.u8(), reader.u32(), reader.u64(), reader.i64()), (4, 77, 1 << 40, -5));
        assert_eq!(*reader.lines(), *lines);
        assert!(!reader.is_done());
        assert_eq!((reader.u8(), reader.order()), (2, OrderId(3)));
        assert!(reader.is_done());
        for reason in [
            CancelReason::OutOfStock,
            CancelReason::PaymentDeclined,
            CancelReason::PaymentFailed,
            CancelReason::ShippingFailed,
        ] {
            assert_eq!(reason_from(reason_code(reason)), reason);
        }
    }
}
