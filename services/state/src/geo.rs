//! Impossible travel: the great-circle distance between two locations of one
//! user against the time between them.

use meshguard_api::session::Geo;

const EARTH_RADIUS_KM: f64 = 6_371.0;

/// Moves shorter than this are never flagged: IP geolocation is city-level,
/// so nearby points a moment apart are noise, not travel.
pub const MIN_DISTANCE_KM: f64 = 100.0;

pub fn haversine_km(a: Geo, b: Geo) -> f64 {
    let (lat1, lat2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = (b.lat - a.lat).to_radians();
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Travel {
    pub distance_km: f64,
    pub elapsed_s: f64,
    pub speed_kmh: f64,
}

/// `Some` when going from `from` (at `from_ms`) to `to` (at `to_ms`) needs a
/// speed above `max_kmh`. Elapsed time below one second counts as one second.
pub fn impossible(from: Geo, from_ms: u64, to: Geo, to_ms: u64, max_kmh: f64) -> Option<Travel> {
    let distance_km = haversine_km(from, to);
    if distance_km < MIN_DISTANCE_KM {
        return None;
    }
    let elapsed_s = (to_ms.saturating_sub(from_ms) as f64 / 1_000.0).max(1.0);
    let speed_kmh = distance_km / (elapsed_s / 3_600.0);
    (speed_kmh > max_kmh).then_some(Travel {
        distance_km,
        elapsed_s,
        speed_kmh,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BERLIN: Geo = Geo {
        lat: 52.52,
        lon: 13.405,
    };
    const NEW_YORK: Geo = Geo {
        lat: 40.7128,
        lon: -74.006,
    };
    const POTSDAM: Geo = Geo {
        lat: 52.3906,
        lon: 13.0645,
    };
    const HOUR_MS: u64 = 3_600_000;

    #[test]
    fn haversine_matches_known_distances() {
        let d = haversine_km(BERLIN, NEW_YORK);
        assert!((d - 6_385.0).abs() < 15.0, "{d}");
        assert!(haversine_km(BERLIN, BERLIN) < 1e-9);
        let antipodes = haversine_km(
            Geo { lat: 0.0, lon: 0.0 },
            Geo {
                lat: 0.0,
                lon: 180.0,
            },
        );
        assert!((antipodes - std::f64::consts::PI * EARTH_RADIUS_KM).abs() < 1e-6);
    }

    #[test]
    fn flags_only_speeds_above_the_threshold() {
        let t = impossible(BERLIN, 0, NEW_YORK, HOUR_MS, 900.0).unwrap();
        assert!(t.speed_kmh > 6_000.0);
        // A ten-hour flight is possible.
        assert!(impossible(BERLIN, 0, NEW_YORK, 10 * HOUR_MS, 900.0).is_none());
        // Nearby and instant is noise.
        assert!(impossible(BERLIN, 0, POTSDAM, 0, 900.0).is_none());
        // Same timestamp far away: flagged, speed finite.
        let t = impossible(BERLIN, 5, NEW_YORK, 5, 900.0).unwrap();
        assert!(t.speed_kmh.is_finite());
    }
}
