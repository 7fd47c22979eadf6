"""Missing-data imputation with a trained pair (Mattei & Frellsen 2018, Sec. 4)."""

from pvae.imputation.impute import impute
from pvae.imputation.masks import MASK_PATTERNS, check_mask, make_mask, mask_from_nan
from pvae.imputation.metrics import imputation_difference, imputation_error, imputation_f1
from pvae.imputation.result import METHODS, Imputation

__all__ = [
    "MASK_PATTERNS",
    "METHODS",
    "Imputation",
    "check_mask",
    "imputation_difference",
    "imputation_error",
    "imputation_f1",
    "impute",
    "make_mask",
    "mask_from_nan",
]
