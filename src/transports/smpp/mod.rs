//! SMPP 3.4 (issue 4). For now the pure layers the channel type will use: GSM 03.38,
//! message splitting, delivery receipts. The session (binds, window, enquire_link) and the
//! channel type itself are not built yet.

pub mod dlr;
pub mod gsm7;
pub mod split;
