"""Training data: mixture policies, the bucketed distributed sampler, manifests and bad audio."""

from pathlib import Path

import numpy as np
import pytest

from vgssl.audio.io import BadAudioError, write_wav
from vgssl.data.manifest import ManifestEntry, write_manifest
from vgssl.train.config import ManifestSource
from vgssl.train.data import (
    AudioDataset,
    EmptySplitError,
    MissingAudioRootError,
    MissingLanguageError,
    WrongSampleRateError,
    check_problems,
    collate_batch,
    load_split,
)
from vgssl.train.mixture import MixtureError, Utterance, select_mixture
from vgssl.train.sampler import BucketBatchSampler, TooFewBatchesError, make_batches

RATE = 16_000


def pool_of(hours_per_language: dict[str, float], *, seconds: float = 10.0) -> dict[str, list[Utterance]]:
    """Utterances of `seconds` each, as many as make the language's hours."""
    pool = {}
    for language, hours in hours_per_language.items():
        count = round(hours * 3600 / seconds)
        pool[language] = [
            Utterance(
                f"{language}/{i}", Path(f"/a/{language}/{i}.wav"), int(seconds * RATE), language, "m.tsv"
            )
            for i in range(count)
        ]
    return pool


def selected_hours(pool, **options) -> dict[str, float]:
    selection = select_mixture(pool, sample_rate=RATE, seed=0, temperature_alpha=0.5, **options)
    hours = {}
    for utterance in selection.utterances:
        hours[utterance.language] = hours.get(utterance.language, 0.0) + utterance.num_samples / RATE / 3600
    assert hours == pytest.approx({s.language: s.selected_seconds / 3600 for s in selection.shares})
    return hours


def test_mono_takes_the_budget_or_everything() -> None:
    pool = pool_of({"en": 2.0})
    assert selected_hours(pool, policy="mono", hours=0.5) == pytest.approx({"en": 0.5})
    assert selected_hours(pool, policy="mono", hours=None) == pytest.approx({"en": 2.0})
    with pytest.raises(MixtureError, match="exactly one language"):
        selected_hours(pool_of({"en": 1.0, "fr": 1.0}), policy="mono", hours=None)


def test_matched_total_splits_the_monolingual_budget_equally() -> None:
    pool = pool_of({"en": 2.0, "fr": 1.0, "de": 1.5})
    assert selected_hours(pool, policy="matched-total", hours=1.5) == pytest.approx(
        {"en": 0.5, "fr": 0.5, "de": 0.5}
    )
    # Unset: the largest equal share every language can give.
    assert selected_hours(pool, policy="matched-total", hours=None) == pytest.approx(
        {"en": 1.0, "fr": 1.0, "de": 1.0}
    )


def test_matched_per_language_gives_each_language_the_budget() -> None:
    pool = pool_of({"en": 2.0, "fr": 1.0})
    assert selected_hours(pool, policy="matched-per-language", hours=0.75) == pytest.approx(
        {"en": 0.75, "fr": 0.75}
    )
    with pytest.raises(MixtureError, match=r"asks 1.500 h of 'fr', but its manifests hold only 1.000 h"):
        selected_hours(pool, policy="matched-per-language", hours=1.5)


def test_temperature_sampling_flattens_an_unbalanced_mixture() -> None:
    pool = pool_of({"en": 3.0, "fr": 1.0})
    hours = selected_hours(pool, policy="temperature", hours=None)
    # p ∝ (n / N)^0.5: en 0.75^0.5 = 0.866, fr 0.25^0.5 = 0.5 → shares 0.634 / 0.366 of 4 h.
    assert hours == pytest.approx({"en": 4 * 0.634, "fr": 4 * 0.366}, abs=0.01)
    assert hours["fr"] > 1.0  # the small language is repeated (upsampled)


def test_selection_is_deterministic_in_the_seed() -> None:
    pool = pool_of({"en": 2.0, "fr": 2.0})
    first = select_mixture(
        pool, policy="matched-total", hours=1.0, temperature_alpha=0.5, seed=1, sample_rate=RATE
    )
    again = select_mixture(
        pool, policy="matched-total", hours=1.0, temperature_alpha=0.5, seed=1, sample_rate=RATE
    )
    other = select_mixture(
        pool, policy="matched-total", hours=1.0, temperature_alpha=0.5, seed=2, sample_rate=RATE
    )
    assert first == again
    assert first.utterances != other.utterances
    assert first.to_json()["total_hours"] == pytest.approx(1.0)


def test_batches_respect_the_padded_budget_and_cover_every_utterance_once() -> None:
    lengths = np.random.default_rng(0).integers(16_000, 128_000, size=200).tolist()
    budget = 400_000
    batches = make_batches(lengths, max_batch_samples=budget, seed=3, epoch=0)
    assert sorted(i for batch in batches for i in batch) == list(range(200))
    assert all(len(batch) * max(lengths[i] for i in batch) <= budget for batch in batches)
    assert batches == make_batches(lengths, max_batch_samples=budget, seed=3, epoch=0)
    assert batches != make_batches(lengths, max_batch_samples=budget, seed=3, epoch=1)
    # Bucketing: little padding, far less than random batches would have.
    padding = sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in batches)
    assert padding < 0.1 * sum(lengths)


def test_ranks_get_disjoint_equal_shares_in_the_global_order() -> None:
    lengths = np.random.default_rng(1).integers(16_000, 64_000, size=101).tolist()
    all_batches = make_batches(lengths, max_batch_samples=200_000, seed=0, epoch=2)
    shares = []
    for rank in range(3):
        sampler = BucketBatchSampler(
            lengths, max_batch_samples=200_000, seed=0, rank=rank, world_size=3, accumulation=2
        )
        sampler.set_epoch(2)
        shares.append(list(sampler))
    assert len({len(share) for share in shares}) == 1 and len(shares[0]) % 2 == 0
    seen = [i for share in shares for batch in share for i in batch]
    assert len(seen) == len(set(seen))
    # Rank r's k-th batch is global batch k × W + r.
    assert all(shares[r][k] == all_batches[k * 3 + r] for r in range(3) for k in range(len(shares[0])))


def test_sampler_resumes_at_a_position() -> None:
    lengths = [16_000 * (1 + i % 5) for i in range(60)]
    sampler = BucketBatchSampler(lengths, max_batch_samples=100_000, seed=0, rank=1, world_size=2)
    sampler.set_epoch(4)
    full = list(sampler)
    sampler.set_epoch(4, start=3)
    assert list(sampler) == full[3:] and len(sampler) == len(full) - 3
    with pytest.raises(TooFewBatchesError, match="fewer than world size 2 × accumulation 64"):
        BucketBatchSampler(
            lengths, max_batch_samples=100_000, seed=0, world_size=2, accumulation=64
        ).rank_batches(0)


def make_corpus(tmp_path: Path, *, rate: int = RATE) -> Path:
    rng = np.random.default_rng(0)
    entries = []
    for i, seconds in enumerate([0.5, 1.5, 3.0]):
        write_wav(
            tmp_path / "audio" / f"u{i}.wav", 0.1 * rng.standard_normal(int(seconds * rate)), sample_rate=rate
        )
        entries.append(ManifestEntry(f"u{i}.wav", int(seconds * RATE)))
    (tmp_path / "audio" / "broken.wav").write_bytes(b"RIFF not really a wav file")
    entries.append(ManifestEntry("broken.wav", 20_000))
    write_manifest(tmp_path / "train.tsv", "audio", entries)
    return tmp_path / "train.tsv"


def test_short_utterances_are_dropped_and_counted(tmp_path: Path) -> None:
    split = load_split(
        [ManifestSource(manifest=make_corpus(tmp_path), language="en")],
        min_seconds=1.0,
        sample_rate=RATE,
        split="train",
    )
    assert split.dropped_short == {"en": 1}
    assert [u.utt_id for u in split.utterances] == ["u1", "u2", "broken"]


def test_a_split_with_nothing_left_is_an_error(tmp_path: Path) -> None:
    source = ManifestSource(manifest=make_corpus(tmp_path), language="en")
    with pytest.raises(
        EmptySplitError, match=r"no train utterance is left: 4 were shorter than data.min_seconds=5"
    ):
        load_split([source], min_seconds=5.0, sample_rate=RATE, split="train")


def test_utterances_need_a_language(tmp_path: Path) -> None:
    with pytest.raises(
        MissingLanguageError, match=r"train.tsv: entry 'u0.wav' has no language .* data.train\[0\]"
    ):
        load_split(
            [ManifestSource(manifest=make_corpus(tmp_path))], min_seconds=0.0, sample_rate=RATE, split="train"
        )


def test_a_missing_audio_root_names_the_manifest_line(tmp_path: Path) -> None:
    (tmp_path / "m.tsv").write_text("no-such-dir\nx.wav\t16000\ten\t\n")
    with pytest.raises(MissingAudioRootError, match=r"m.tsv:1: the audio root .*no-such-dir does not exist"):
        load_split(
            [ManifestSource(manifest=tmp_path / "m.tsv")], min_seconds=0.0, sample_rate=RATE, split="train"
        )


def dataset_over(manifest: Path, **options) -> AudioDataset:
    split = load_split(
        [ManifestSource(manifest=manifest, language="en")], min_seconds=1.0, sample_rate=RATE, split="t"
    )
    return AudioDataset(split.utterances, max_samples=32_000, seed=0, sample_rate=RATE, **options)


def test_random_crops_depend_on_epoch_and_index_only(tmp_path: Path) -> None:
    dataset = dataset_over(make_corpus(tmp_path), on_wrong_sample_rate="resample")
    first = dataset[1].audio
    assert len(first) == 32_000 and len(dataset[0].audio) == 24_000  # 3.0 s cropped, 1.5 s kept
    assert np.array_equal(first, dataset[1].audio)
    dataset.set_epoch(1)
    assert not np.array_equal(first, dataset[1].audio)


def test_bad_audio_is_skipped_by_name_or_fails_naming_the_file(tmp_path: Path) -> None:
    dataset = dataset_over(make_corpus(tmp_path), on_wrong_sample_rate="resample")
    batch = collate_batch([dataset[i] for i in range(3)])
    assert batch.utt_ids == ["u1", "u2"] and batch.wav.shape == (2, 32_000)
    assert batch.audio_samples == 24_000 + 32_000
    assert [problem.utt_id for problem in batch.problems] == ["broken"]
    check_problems(batch, on_bad_audio="skip")
    with pytest.raises(BadAudioError, match=r"broken.wav.*on_bad_audio: skip"):
        check_problems(batch, on_bad_audio="fail")


def test_wrong_sample_rate_is_resampled_or_refused(tmp_path: Path) -> None:
    manifest = make_corpus(tmp_path, rate=8_000)
    resampled = dataset_over(manifest, on_wrong_sample_rate="resample")[0].audio
    assert len(resampled) == 24_000
    refusing = dataset_over(manifest, on_wrong_sample_rate="fail")
    with pytest.raises(WrongSampleRateError, match=r"u1\.wav is at 8000 Hz, not 16000 Hz"):
        check_problems(collate_batch([refusing[0]]), on_bad_audio="skip")
