//! The OS keychain of each platform, the store's only platform-specific code: the Secret
//! Service (Linux and the BSDs), the macOS Keychain, the Windows Credential Manager, and none
//! elsewhere. CI compiles it on each of those systems.

use std::sync::Arc;

#[cfg(all(
    unix,
    not(any(target_os = "macos", target_os = "ios", target_os = "android"))
))]
pub fn keychain() -> keyring_core::Result<Arc<keyring_core::CredentialStore>> {
    use crate::env;
    // Without a session bus there is no Secret Service: fail fast instead of waiting on it.
    let bus_address = env::var(env::DBUS_SESSION_BUS_ADDRESS).is_some();
    let runtime_bus = env::var(env::XDG_RUNTIME_DIR)
        .is_some_and(|dir| std::path::Path::new(&dir).join("bus").exists());
    if !bus_address && !runtime_bus {
        return Err(keyring_core::Error::NoDefaultStore);
    }
    let store: Arc<keyring_core::CredentialStore> =
        zbus_secret_service_keyring_store::Store::new()?;
    Ok(store)
}

#[cfg(target_os = "macos")]
pub fn keychain() -> keyring_core::Result<Arc<keyring_core::CredentialStore>> {
    let store: Arc<keyring_core::CredentialStore> =
        apple_native_keyring_store::keychain::Store::new()?;
    Ok(store)
}

#[cfg(target_os = "windows")]
pub fn keychain() -> keyring_core::Result<Arc<keyring_core::CredentialStore>> {
    let store: Arc<keyring_core::CredentialStore> = windows_native_keyring_store::Store::new()?;
    Ok(store)
}

#[cfg(not(any(
    all(
        unix,
        not(any(target_os = "macos", target_os = "ios", target_os = "android"))
    ),
    target_os = "macos",
    target_os = "windows"
)))]
pub fn keychain() -> keyring_core::Result<Arc<keyring_core::CredentialStore>> {
    Err(keyring_core::Error::NoDefaultStore)
}
