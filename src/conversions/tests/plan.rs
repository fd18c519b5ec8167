//! `plan_transition` is pure: every transition from every status, decided before any write.

use crate::conversions::jobs::{plan_transition, TransitionPlan};
use crate::conversions::{ConversionError, Status, Transition};

/// Plans `t` for a conversion of 1000 at `status` with `refunded` refunded so far; a refusal
/// is shown as its message.
fn check(status: Status, refunded: i64, t: Transition, want: Result<TransitionPlan, &str>) {
    let got = plan_transition("cv_1", status, 1000, refunded, t);
    match (got, want) {
        (Ok(got), Ok(want)) => assert_eq!(got, want, "{status:?} {refunded} {t:?}"),
        (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{status:?} {refunded} {t:?}: {e}"),
        (got, want) => panic!("{status:?} {refunded} {t:?}: got {got:?}, want {want:?}"),
    }
}

fn refund(amount_minor: i64, refunded_minor: i64, status: Status) -> Result<TransitionPlan, &'static str> {
    Ok(TransitionPlan::Refund { amount_minor, refunded_minor, status })
}

#[test]
fn confirm() {
    check(Status::Pending, 0, Transition::Confirm, Ok(TransitionPlan::Confirm));
    check(Status::Confirmed, 0, Transition::Confirm, Ok(TransitionPlan::Nothing));
    check(Status::Cancelled, 0, Transition::Confirm, Err("conversion cv_1 is cancelled: it cannot be confirmed"));
    check(Status::Refunded, 1000, Transition::Confirm, Err("is refunded: it cannot be confirmed"));
}

#[test]
fn cancel() {
    check(Status::Pending, 0, Transition::Cancel, Ok(TransitionPlan::Cancel));
    check(Status::Confirmed, 0, Transition::Cancel, Ok(TransitionPlan::Cancel));
    check(Status::Cancelled, 0, Transition::Cancel, Ok(TransitionPlan::Nothing));
    check(Status::Confirmed, 300, Transition::Cancel, Err("refunded further, not cancelled"));
    check(Status::Refunded, 1000, Transition::Cancel, Err("refunded further, not cancelled"));
}

#[test]
fn refund_plans() {
    check(Status::Pending, 0, Transition::Refund(Some(300)), refund(300, 0, Status::Pending));
    check(Status::Confirmed, 300, Transition::Refund(Some(700)), refund(700, 300, Status::Refunded));
    check(Status::Confirmed, 300, Transition::Refund(None), refund(700, 300, Status::Refunded));
    check(Status::Confirmed, 300, Transition::Refund(Some(701)), Err("amount_minor: must be in 1..=700 (what is left to refund), got 701"));
    check(Status::Confirmed, 0, Transition::Refund(Some(0)), Err("must be in 1..=1000"));
    check(Status::Cancelled, 0, Transition::Refund(None), Err("nothing is left to refund"));
    check(Status::Refunded, 1000, Transition::Refund(Some(1)), Err("nothing is left to refund"));
}

/// A refused plan is a conflict or an invalid field, never a storage error: the API answers
/// 409 or 422 for it.
#[test]
fn refusals_are_conflicts_or_invalid_fields() {
    assert!(matches!(plan_transition("cv_1", Status::Cancelled, 1000, 0, Transition::Confirm), Err(ConversionError::Conflict(_))));
    assert!(matches!(
        plan_transition("cv_1", Status::Pending, 1000, 0, Transition::Refund(Some(2000))),
        Err(ConversionError::Invalid { field: "amount_minor", .. })
    ));
}
