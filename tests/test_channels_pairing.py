"""DM pairing: codes, expiry, limits, the v3 file format, approvals and denials."""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from pathlib import Path

from twisted.trial.unittest import TestCase

from openclaw.channels.pairing import ALPHABET, CODE_LENGTH, PairingSettings, PairingStore, duration_ms, iso, new_code, safe_channel

T0 = 1_800_000_000_000


class PairingStoreTests(TestCase):
    def store(self, **settings):
        self.folder = Path(self.mktemp())
        return PairingStore(self.folder / "credentials", "telegram", PairingSettings(**settings))

    def test_code_alphabet_and_length(self):
        """Codes are 8 characters from the 32-symbol alphabet without 0, O, 1, I."""
        self.assertEqual(len(ALPHABET), 32)
        self.assertFalse(set("0O1I") & set(ALPHABET))
        for _ in range(2000):
            code = new_code()
            self.assertEqual(len(code), CODE_LENGTH)
            self.assertTrue(set(code) <= set(ALPHABET), code)

    def test_codes_are_uniform(self):
        """Each position is uniform over the alphabet (chi-square, 31 degrees of freedom, bound at p < 1e-7): a CSPRNG, not a biased draw."""
        draws = 20_000
        codes = [new_code() for _ in range(draws)]
        for position in range(CODE_LENGTH):
            counts = Counter(code[position] for code in codes)
            expected = draws / len(ALPHABET)
            chi2 = sum((counts.get(c, 0) - expected) ** 2 / expected for c in ALPHABET)
            self.assertLess(chi2, 85.0, f"position {position}: chi2 {chi2:.1f}")
        self.assertGreater(len(set(codes)), draws - 5)  # 2^40 codes: collisions are near impossible

    def test_request_is_stored_in_the_v3_format(self):
        """A request lands in credentials/telegram-pairing.json as upstream's v3 writes it, file 0600 in a 0700 folder."""
        store = self.store()
        request, created = store.request("42", T0, {"accountId": "default", "chatId": "42"})
        self.assertTrue(created)
        data = json.loads(store.requests_path.read_text())
        self.assertEqual(data, {"version": 1, "requests": [{"id": "42", "code": request.code, "createdAt": iso(T0), "lastSeenAt": iso(T0), "meta": {"accountId": "default", "chatId": "42"}}]})
        self.assertEqual(stat.S_IMODE(os.stat(store.requests_path).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(store.requests_path.parent).st_mode), 0o700)
        self.assertEqual(iso(T0), "2027-01-15T08:00:00.000Z")

    def test_asking_again_keeps_the_code(self):
        """A sender who writes again gets the same pending request (created false), with lastSeenAt moved."""
        store = self.store()
        first, _ = store.request("42", T0)
        again, created = store.request("42", T0 + 1000)
        self.assertFalse(created)
        self.assertEqual((again.code, again.created_ms, again.last_seen_ms), (first.code, T0, T0 + 1000))
        self.assertEqual(len(store.pending(T0 + 1000)), 1)

    def test_expiry_on_a_fake_clock(self):
        """A request lives codeExpiry (default 300 s) from its creation; after that it is gone and its code approves nothing."""
        store = self.store()
        request, _ = store.request("42", T0)
        self.assertIsNotNone(store.find(T0 + 299_999, code=request.code))
        self.assertIsNone(store.find(T0 + 300_000, code=request.code))
        self.assertEqual(store.pending(T0 + 300_000), [])
        fresh, created = store.request("42", T0 + 300_001)
        self.assertTrue(created)
        self.assertEqual(fresh.created_ms, T0 + 300_001)

    def test_configured_expiry_and_limit(self):
        """pairing.codeExpiry takes durations ("90s", "1h", ms) and pairing.maxPending a count; bad values fall back to the defaults."""
        settings = PairingSettings.from_config({"pairing": {"codeExpiry": "90s", "maxPending": 2, "enabled": False}})
        self.assertEqual(settings, PairingSettings(False, 90_000, 2))
        self.assertEqual(PairingSettings.from_config({}), PairingSettings(True, 300_000, 10))
        self.assertEqual(PairingSettings.from_config({"pairing": {"codeExpiry": "soon", "maxPending": 0}}), PairingSettings(True, 300_000, 10))
        self.assertEqual([duration_ms(v, 1) for v in ("1h", "250ms", 5000, "2.5m", True)], [3_600_000, 250, 5000, 150_000, 1])

    def test_max_pending(self):
        """At most maxPending requests wait; more senders get nothing until one expires or is resolved."""
        store = self.store(max_pending=3)
        codes = {store.request(str(i), T0)[0].code for i in range(3)}
        self.assertEqual(len(codes), 3)
        self.assertEqual(store.request("99", T0), (None, False))
        store.remove(store.pending(T0)[0])
        self.assertTrue(store.request("99", T0)[1])
        self.assertEqual(store.request("100", T0 + 300_000)[1], True)  # the others expired

    def test_approve_allows_the_sender(self):
        """Approval moves the sender to credentials/telegram-allowFrom.json ({"version":1,"allowFrom":[...]}) and removes the request."""
        store = self.store()
        request, _ = store.request("42", T0)
        self.assertEqual(store.find(T0, code=request.code.lower()), request)  # codes are typed in any case
        self.assertTrue(store.approve(request))
        self.assertEqual(store.allowed(), frozenset({"42"}))
        self.assertEqual(json.loads(store.allow_path.read_text()), {"version": 1, "allowFrom": ["42"]})
        self.assertEqual(store.pending(T0), [])
        self.assertFalse(store.approve(request))

    def test_deny_removes_without_allowing(self):
        """Dismissing a request forgets it; the sender is not allowed and may ask again later."""
        store = self.store()
        request, _ = store.request("42", T0)
        self.assertTrue(store.remove(request))
        self.assertEqual(store.allowed(), frozenset())
        self.assertIsNone(store.find(T0, request_id=request.request_id))
        self.assertTrue(store.request("42", T0)[1])

    def test_request_id_is_stable(self):
        """The RPC request id is derived from channel, account, sender and creation time (it survives restarts)."""
        store = self.store()
        request, _ = store.request("42", T0, {"accountId": "work"})
        reread = store.pending(T0)[0]
        self.assertEqual(reread.request_id, request.request_id)
        self.assertEqual(len(request.request_id), 32)
        self.assertEqual(store.find(T0, request_id=request.request_id), request)

    def test_another_process_approving_counts(self):
        """An allowFrom file written by someone else (upstream's CLI) is read again at once."""
        store = self.store()
        self.assertEqual(store.allowed(), frozenset())
        store.allow_path.parent.mkdir(parents=True)
        store.allow_path.write_text(json.dumps({"version": 1, "allowFrom": ["7", 8, "*"]}))
        self.assertEqual(store.allowed(), frozenset({"7", "8"}))
        store.allow_path.write_text(json.dumps({"version": 1, "allowFrom": ["7", "9"]}))
        os.utime(store.allow_path, ns=(1, 1))
        self.assertEqual(store.allowed(), frozenset({"7", "9"}))

    def test_damaged_files_are_set_aside(self):
        """A damaged allowFrom file allows nobody (fail closed) and is kept aside, not overwritten."""
        store = self.store()
        store.allow_path.parent.mkdir(parents=True)
        store.allow_path.write_text("{not json")
        self.assertEqual(store.allowed(), frozenset())
        self.assertTrue(store.allow("5"))
        self.assertEqual(store.allowed(), frozenset({"5"}))
        aside = [p for p in store.allow_path.parent.iterdir() if ".corrupt-" in p.name]
        self.assertEqual(len(aside), 1)
        self.assertEqual(aside[0].read_text(), "{not json")

    def test_channel_file_names(self):
        """Channel ids are made safe for file names as upstream does."""
        self.assertEqual(safe_channel("Tele/gram:..x"), "tele_gram__x")
        self.assertRaises(ValueError, safe_channel, "/")
