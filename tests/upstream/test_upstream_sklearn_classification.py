"""sklearn's own tests (`metrics/tests/test_classification.py`, loaded from the installed package) run against domain_tutor: see upstream_adapter."""
from upstream_adapter import load

# Known differences, by test name (or full parametrised id): marked xfail with the reason.
KNOWN_DIFFERENCES = {
    "test_classification_report_zero_division_warning[warn]": "the library's zero_division has no 'warn' mode: it never emits UndefinedMetricWarning for 0/0",
    "test_zero_division_nan_warning": "the library's zero_division has no 'warn' mode: it never emits UndefinedMetricWarning for 0/0",
    "test_prf_warnings": "the library's zero_division has no 'warn' mode: it never emits UndefinedMetricWarning for 0/0",
    "test_classification_report_labels_subset_superset[labels0-True]": "the library requires `labels` to cover every label in y_true and y_pred (a deliberate, stricter rule taught in chapter 06); scikit-learn lets `labels` select a subset",
    "test_precision_recall_f_ignored_labels": "the library requires `labels` to cover every label in y_true and y_pred (a deliberate, stricter rule taught in chapter 06); scikit-learn lets `labels` select a subset",
    "test_confusion_matrix_multiclass_subset_labels": "the library requires `labels` to cover every label in y_true and y_pred (a deliberate, stricter rule taught in chapter 06); scikit-learn lets `labels` select a subset",
    "test_confusion_matrix_error[unknown labels]": "the library requires `labels` to cover every label in y_true and y_pred (a deliberate, stricter rule taught in chapter 06); scikit-learn lets `labels` select a subset",
    "test_balanced_accuracy_score": "the library requires `labels` to cover every label in y_true and y_pred (a deliberate, stricter rule taught in chapter 06); scikit-learn lets `labels` select a subset (recall_score with labels=np.unique(y_true))",
    "test_precision_recall_f_unused_pos_label": "the library does not warn when pos_label is ignored (average != 'binary')",
    "test_confusion_matrix_single_label": "the library does not warn when y_true and y_pred hold a single label",
    "test_prf_average_binary_data_non_binary": "error-message wording: the library says average='binary' needs at most 2 classes",
}

globals().update(load("sklearn", "metrics/tests/test_classification.py", "sklearn.metrics"))
