//! Arbitrary bytes as a JWK set, read strictly and leniently: never a panic.

#![no_main]

use jwt_policy::KeySet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let strict = KeySet::from_jwks(bytes);
    let lenient = KeySet::from_jwks_lenient(bytes);
    // Whatever the strict reading accepts, the lenient one accepts with the same keys.
    if let Ok(strict) = strict {
        let lenient = lenient.expect("lenient reading refused a set the strict one accepted");
        assert_eq!(strict.keys().len(), lenient.keys().len());
    }
});
