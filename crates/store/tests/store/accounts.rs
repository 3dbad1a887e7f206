//! Staff accounts and sessions, and return numbers.

use super::*;

#[test]
fn staff_log_in_with_the_right_password_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("shopchat.db")).unwrap();
    let id = store.add_staff("Mei", "plum blossom 7").unwrap();
    let err = store.add_staff("mei", "another password").unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }) && err.is_user_error(), "{err}");
    let err = store.add_staff("Tom", "short").unwrap_err();
    assert!(matches!(err, Error::WeakPassword { min_chars: 8 }) && err.is_user_error(), "{err}");

    let mei = store.verify_staff("Mei", "plum blossom 7").unwrap().expect("right password");
    assert_eq!((mei.id, mei.name.as_str()), (id, "Mei"));
    assert_eq!(store.verify_staff("Mei", "plum blossom 8").unwrap(), None);
    assert_eq!(store.verify_staff("Nobody", "plum blossom 7").unwrap(), None);
    assert_no_file_contains(dir.path(), "plum blossom 7");

    let token = store.create_session(id, Duration::from_secs(3600)).unwrap();
    assert_eq!(token.as_str().len(), 64);
    assert_eq!(store.session(token.as_str()).unwrap(), Some(mei.clone()));
    assert_eq!(store.session("not a token").unwrap(), None);
    assert_no_file_contains(dir.path(), token.as_str());
    store.delete_session(token.as_str()).unwrap();
    assert_eq!(store.session(token.as_str()).unwrap(), None);

    let expired = store.create_session(id, Duration::ZERO).unwrap();
    assert_eq!(store.session(expired.as_str()).unwrap(), None);
    assert!(matches!(
        store.create_session(shopchat_store::StaffId(999), Duration::from_secs(60)),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn return_numbers_are_unique() {
    let (_dir, store) = open();
    let mut numbers = HashSet::new();
    for i in 0..300 {
        let record = store
            .create_return(NewReturn {
                order_number: format!("NW-{}", 100_000 + i % 3),
                customer_id: "cust-1".into(),
                items: vec!["SKU-SCARF-BLUE".into()],
                reason: Some("too small".into()),
            })
            .unwrap();
        let digits = record.return_number.strip_prefix("RMA-").expect("RMA- prefix");
        assert!(
            digits.len() == 6 && digits.chars().all(|c| c.is_ascii_digit()),
            "{}",
            record.return_number
        );
        assert!(numbers.insert(record.return_number), "duplicate return number");
    }
    let returns = store.returns_for_order("NW-100001").unwrap();
    assert_eq!(returns.len(), 100);
    assert!(returns
        .iter()
        .all(|r| r.items == ["SKU-SCARF-BLUE"] && r.reason.as_deref() == Some("too small")));
    assert_eq!(store.returns_for_order("NW-999999").unwrap(), []);
    let no_items = NewReturn {
        order_number: "NW-1".into(),
        customer_id: "c".into(),
        items: vec![],
        reason: None,
    };
    assert!(matches!(store.create_return(no_items), Err(Error::InvalidInput(_))));
}
