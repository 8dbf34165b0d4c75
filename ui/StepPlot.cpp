#include "ui/StepPlot.h"

#include <QToolTip>

#include <algorithm>
#include <cmath>

namespace studio::ui {

namespace {

// 20 redraws a second look live and leave the UI thread free; a fast GPU can report far more
// steps than that.
constexpr int kReplotIntervalMs = 50;
// Room around the data on each side, as a fraction of its span.
constexpr double kMargin = 0.04;

} // namespace

StepPlot::StepPlot(QWidget* parent) : QCustomPlot(parent)
{
    setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
    setMinimumHeight(160);
    xAxis->setLabel(tr("step"));
    legend->setVisible(true);
    legend->setFont(font());
    axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignTop | Qt::AlignRight);

    m_replotTimer.setSingleShot(true);
    m_replotTimer.setInterval(kReplotIntervalMs);
    connect(&m_replotTimer, &QTimer::timeout, this, &StepPlot::replotNow);

    // Zooming or panning means the user wants to look at something: stop moving the axes.
    connect(this, &QCustomPlot::mousePress, this, [this] { m_following = false; });
    connect(this, &QCustomPlot::mouseWheel, this, [this] { m_following = false; });
    connect(this, &QCustomPlot::mouseDoubleClick, this, [this] { followData(); });
    connect(this, &QCustomPlot::mouseMove, this, &StepPlot::showToolTip);
}

void StepPlot::followData()
{
    m_following = true;
    m_replotTimer.stop();
    replotNow();
}

void StepPlot::scheduleReplot()
{
    if (!m_replotTimer.isActive()) {
        m_replotTimer.start();
    }
}

void StepPlot::replotNow()
{
    QCPRange steps;
    QCPRange values;
    // Fitted from the data itself: QCustomPlot's own rescale keeps the old span for flat data.
    if (m_following && dataBounds(steps, values)) {
        const double margin = std::max(0.5, steps.size() * kMargin);
        xAxis->setRange(steps.lower - margin, steps.upper + margin);
        yAxis->setRange(valueRange(values));
    }
    replot(QCustomPlot::rpQueuedReplot);
}

QCPRange StepPlot::valueRange(const QCPRange& fitted) const
{
    const double middle = fitted.center();
    const double margin =
        fitted.size() > 0.0 ? fitted.size() * kMargin : std::max(std::abs(middle) * 0.1, 1e-12);
    return QCPRange(fitted.lower - margin, fitted.upper + margin);
}

void StepPlot::showToolTip(QMouseEvent* event)
{
    if (!axisRect()->rect().contains(event->pos())) {
        return;
    }
    const QString text = describeNearest(xAxis->pixelToCoord(event->pos().x()));
    if (!text.isEmpty()) {
        QToolTip::showText(event->globalPosition().toPoint(), text, this);
    }
}

void StepPlot::include(QCPRange& range, bool& any, const std::vector<double>& data)
{
    for (double value : data) {
        if (!std::isfinite(value)) {
            continue;
        }
        range = any ? QCPRange(std::min(range.lower, value), std::max(range.upper, value))
                    : QCPRange(value, value);
        any = true;
    }
}

int StepPlot::nearestIndex(const std::vector<double>& steps, double step)
{
    if (steps.empty()) {
        return -1;
    }
    const auto after = std::lower_bound(steps.begin(), steps.end(), step);
    if (after == steps.begin()) {
        return 0;
    }
    if (after == steps.end()) {
        return static_cast<int>(steps.size()) - 1;
    }
    const auto before = after - 1;
    const auto nearest = (step - *before <= *after - step) ? before : after;
    return static_cast<int>(nearest - steps.begin());
}

QString StepPlot::formatNumber(double value)
{
    return QString::number(value, 'g', 6);
}

} // namespace studio::ui
