"""Small data sets shipped with cardloop, so an example pipeline runs with no download.

`diabetes.csv` — the diabetes data of Efron, Hastie, Johnstone and Tibshirani, "Least Angle Regression",
Annals of Statistics 32(2), 2004: 442 patients, ten baseline features (age, sex, bmi, bp, s1..s6, unscaled)
and `target`, a measure of disease progression one year later. Exported once from scikit-learn's
`load_diabetes(scaled=False)` (scikit-learn is BSD-3-Clause licensed); scikit-learn is not a dependency.

`digits.csv` — the 8×8 handwritten digits as scikit-learn ships them: 1,797 rows of 64 pixel intensities 0..16
(`pixel_0_0`..`pixel_7_7`, row-major) and `target`, the digit 0..9. README.md beside this file documents both
data sets, their origin and license.

A `data_load` card reads these by name with the `cardloop:` prefix, e.g. `path: cardloop:diabetes.csv`.
"""

from __future__ import annotations

from pathlib import Path

DATASETS_DIR = Path(__file__).resolve().parent
DIABETES_CSV = DATASETS_DIR / "diabetes.csv"
DIGITS_CSV = DATASETS_DIR / "digits.csv"
