//! SMPP framing: rusmpp's `CommandCodec`, given exactly one PDU's bytes at a time.
//!
//! rusmpp 0.4.0 decodes a PDU body from the whole read buffer, so a C-octet string with no
//! NUL inside its frame (a broken SMSC) is read on into the next PDU, which is then
//! misframed. Here the frame is cut by `command_length` first: such a PDU is unreadable on
//! its own (the session answers generic_nack), and the next one is read from its first byte.

use bytes::{Buf, BytesMut};
use rusmpp::Command;
use rusmpp::tokio_codec::{CommandCodec, DecodeError, EncodeError};
use tokio_util::codec::{Decoder, Encoder};

/// The largest PDU accepted (SMPP 3.4 sets no limit; a deliver_sm with a full
/// message_payload is under 65,600 octets).
pub const MAX_PDU: usize = 70_000;

/// A PDU whose frame was whole but whose body could not be read: answered with
/// generic_nack, and the session reads on.
#[derive(Debug)]
pub struct Unreadable {
    pub sequence: u32,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Codec {
    inner: CommandCodec,
}

impl Codec {
    pub fn new() -> Codec {
        Codec {
            inner: CommandCodec::new(),
        }
    }
}

impl Decoder for Codec {
    /// A PDU, or one that was framed but unreadable. An `Err` means the framing itself is
    /// lost (an impossible command_length): the connection cannot be read on.
    type Item = Result<Command, Unreadable>;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, DecodeError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let length = (&src[..4]).get_u32() as usize;
        if !(16..=MAX_PDU).contains(&length) {
            // Nothing to resynchronise on: the rest of the buffer goes with it.
            src.clear();
            return Err(DecodeError::MaxLength {
                actual: length,
                max: MAX_PDU,
            });
        }
        if src.len() < length {
            src.reserve(length - src.len());
            return Ok(None);
        }
        let mut frame = src.split_to(length);
        let sequence = (&frame[12..16]).get_u32();
        let reason = match self.inner.decode(&mut frame) {
            Ok(Some(command)) => return Ok(Some(Ok(command))),
            // A whole frame the inner codec still finds short: its body claims more than
            // its command_length.
            Ok(None) => "its body runs past its command_length".to_string(),
            Err(e) => e.to_string(),
        };
        // Afresh for the next PDU, whatever state that left it in.
        self.inner = CommandCodec::new();
        Ok(Some(Err(Unreadable { sequence, reason })))
    }
}

impl Encoder<Command> for Codec {
    type Error = EncodeError;

    fn encode(&mut self, command: Command, dst: &mut BytesMut) -> Result<(), EncodeError> {
        self.inner.encode(command, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusmpp::Pdu;

    #[test]
    fn a_string_without_its_nul_does_not_swallow_the_next_pdu() {
        // submit_sm_resp (20 octets) whose message_id "abcd" has no NUL, then enquire_link.
        let bytes: &[u8] = &[
            0, 0, 0, 20, 0x80, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1, b'a', b'b', b'c', b'd', 0, 0, 0,
            16, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 2,
        ];
        let mut codec = Codec::new();
        let mut buf = BytesMut::from(bytes);
        let first = codec.decode(&mut buf).unwrap().expect("a whole frame");
        assert!(
            matches!(first, Err(Unreadable { sequence: 1, .. })),
            "{first:?}"
        );
        let second = codec
            .decode(&mut buf)
            .unwrap()
            .expect("a whole PDU")
            .unwrap();
        assert!(matches!(second.pdu(), Some(Pdu::EnquireLink)), "{second:?}");
        assert_eq!(second.sequence_number(), 2);
        assert!(buf.is_empty());
    }

    #[test]
    fn frames_split_across_reads_are_joined() {
        let bytes: &[u8] = &[0, 0, 0, 16, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 7];
        let mut codec = Codec::new();
        let mut buf = BytesMut::from(&bytes[..10]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&bytes[10..]);
        let cmd = codec
            .decode(&mut buf)
            .unwrap()
            .expect("a whole PDU")
            .unwrap();
        assert_eq!(cmd.sequence_number(), 7);
    }
}
