#pragma once

// Helpers shared by the test suites: where the reference data lives, tensor comparison with
// tolerances, and checks that an operation fails with a given message.

#include "core/Error.h"

#include <ATen/ATen.h>

#include <QDir>
#include <QString>
#include <QTest>

#include <functional>

namespace studio::test {

// ../shared/reference by default (CMake's HNSTUDIO_REFERENCE_DIR); HNSTUDIO_REFERENCE_DIR in
// the environment overrides it.
inline QString referenceDir()
{
    const QByteArray fromEnvironment = qgetenv("HNSTUDIO_REFERENCE_DIR");
    if (!fromEnvironment.isEmpty()) {
        return QString::fromLocal8Bit(fromEnvironment);
    }
    return QStringLiteral(HNSTUDIO_REFERENCE_DIR);
}

inline QString referencePath(const QString& relative)
{
    return QDir(referenceDir()).filePath(relative);
}

// Largest |a - b| - (atol + rtol * |b|); <= 0 means within tolerance. NaN compares as failure.
inline double toleranceExcess(const at::Tensor& actual, const at::Tensor& expected, double atol,
                              double rtol)
{
    const at::Tensor a = actual.to(at::kDouble);
    const at::Tensor b = expected.to(at::kDouble);
    const at::Tensor excess = (a - b).abs() - (atol + rtol * b.abs());
    if (excess.isnan().any().item<bool>()) {
        return std::numeric_limits<double>::infinity();
    }
    return excess.numel() == 0 ? 0.0 : excess.max().item<double>();
}

inline QString shapeOf(const at::Tensor& tensor)
{
    return QString::fromStdString(c10::str(tensor.sizes()));
}

// Compares shapes and values; reports the worst element on failure.
#define STUDIO_COMPARE_TENSORS(actual, expected, atol, rtol)                                       \
    do {                                                                                           \
        const at::Tensor studioActual = (actual);                                                  \
        const at::Tensor studioExpected = (expected);                                              \
        QCOMPARE(studio::test::shapeOf(studioActual), studio::test::shapeOf(studioExpected));      \
        const double studioExcess =                                                                \
            studio::test::toleranceExcess(studioActual, studioExpected, (atol), (rtol));           \
        if (studioExcess > 0) {                                                                    \
            const double studioMaxDiff =                                                           \
                (studioActual.to(at::kDouble) - studioExpected.to(at::kDouble))                    \
                    .abs()                                                                         \
                    .max()                                                                         \
                    .item<double>();                                                               \
            QFAIL(qPrintable(QStringLiteral("tensors differ: max |diff| %1 exceeds tolerance by "  \
                                            "%2")                                                  \
                                 .arg(studioMaxDiff)                                               \
                                 .arg(studioExcess)));                                             \
        }                                                                                          \
    } while (false)

// The message of the studio::Error that `body` throws, or a null QString if it throws none.
inline QString errorMessageOf(const std::function<void()>& body)
{
    try {
        body();
    } catch (const Error& error) {
        return error.message();
    }
    return QString();
}

#define STUDIO_VERIFY_ERROR(body, expectedPart)                                                    \
    do {                                                                                           \
        const QString studioMessage = studio::test::errorMessageOf([&] { body; });                 \
        if (studioMessage.isNull()) {                                                              \
            QFAIL("expected a studio::Error, but none was thrown");                                \
        }                                                                                          \
        if (!studioMessage.contains((expectedPart), Qt::CaseInsensitive)) {                        \
            QFAIL(qPrintable(QStringLiteral("error message '%1' does not contain '%2'")            \
                                 .arg(studioMessage, QString(expectedPart))));                     \
        }                                                                                          \
    } while (false)

// A parameter after an AdamW step (lr 1e-3). Where the reference gradient is at the noise level
// of two correct float32 implementations (below `noiseLevel`), the first Adam step
// lr * g / (|g| + eps) is dominated by that noise (reference README, tolerances), so those
// elements may differ by up to the update's full range, 2 * lr; everywhere else by 1e-5.
// Returns how many elements were that sensitive.
inline int64_t compareAfterAdamStep(const at::Tensor& actual, const at::Tensor& expected,
                                    const at::Tensor& referenceGrad, double noiseLevel)
{
    const at::Tensor sensitive = referenceGrad.abs() < noiseLevel;
    const at::Tensor diff = (actual.detach() - expected).abs();
    const double stable = diff.masked_fill(sensitive, 0.0).max().item<double>();
    const double noisy = diff.masked_fill(sensitive.logical_not(), 0.0).max().item<double>();
    if (stable > 1e-5 || noisy > 2.1e-3) {
        QTest::qFail(qPrintable(QStringLiteral("after the step: max |diff| %1 where the gradient "
                                               "is determined, %2 where it is noise")
                                    .arg(stable)
                                    .arg(noisy)),
                     __FILE__, __LINE__);
    }
    return sensitive.sum().item<int64_t>();
}

} // namespace studio::test
