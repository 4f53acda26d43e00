//! One way to take a lock.
//!
//! Truc's mutexes guard small in-memory tables (connections, leases,
//! counters, caches) whose every update is complete before the guard is
//! dropped, and nothing durable lives only in them. A panic in one request
//! while it holds such a lock must not wedge the whole hub with poisoned
//! locks, so a poisoned lock is taken as it is: [`Locked::locked`], not
//! `lock().unwrap()` (which would turn one panic into many) and not a
//! recovery written out at every call.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// [`Mutex::lock`] that takes a poisoned lock as it is (see the module docs).
pub trait Locked<T: ?Sized> {
    /// The guard, whether or not an earlier holder panicked.
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T: ?Sized> Locked<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// [`RwLock::read`] and [`RwLock::write`] that take a poisoned lock as it
/// is (see the module docs).
pub trait ReadWriteLocked<T: ?Sized> {
    /// Shared access, whether or not an earlier writer panicked.
    fn read_locked(&self) -> RwLockReadGuard<'_, T>;
    /// Exclusive access, whether or not an earlier writer panicked.
    fn write_locked(&self) -> RwLockWriteGuard<'_, T>;
}

impl<T: ?Sized> ReadWriteLocked<T> for RwLock<T> {
    fn read_locked(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(PoisonError::into_inner)
    }
    fn write_locked(&self) -> RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::Locked;
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_poisoned_lock_is_taken_as_it_is() {
        let m = Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let mut g = m2.lock().unwrap();
            *g = 2;
            panic!("a holder panics");
        })
        .join();
        assert!(m.is_poisoned());
        assert_eq!(*m.locked(), 2);
    }
}
