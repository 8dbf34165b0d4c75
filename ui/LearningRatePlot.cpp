#include "ui/LearningRatePlot.h"

#include "core/Error.h"

#include <algorithm>

namespace studio::ui {

LearningRatePlot::LearningRatePlot(QWidget* parent) : StepPlot(parent)
{
    setObjectName(QStringLiteral("learningRatePlot"));
    yAxis->setLabel(tr("learning rate"));
    yAxis->setNumberFormat(QStringLiteral("gb"));
    yAxis->setNumberPrecision(2);

    m_plannedGraph = addGraph();
    m_plannedGraph->setName(tr("planned"));
    m_plannedGraph->setPen(QPen(QColor(150, 150, 150), 1.5));
    m_plannedGraph->setLineStyle(QCPGraph::lsStepLeft);

    m_usedGraph = addGraph();
    m_usedGraph->setName(tr("used"));
    m_usedGraph->setLineStyle(QCPGraph::lsNone);
    m_usedGraph->setScatterStyle(
        QCPScatterStyle(QCPScatterStyle::ssDisc, QColor(200, 90, 20), QColor(200, 90, 20), 4));
}

QString LearningRatePlot::setPlan(const LrScheduleSpec& spec)
{
    clearPlan();
    std::unique_ptr<LrSchedule> schedule;
    try {
        schedule = makeLrSchedule(spec);
    } catch (const Error& error) {
        return error.message();
    }

    const int64_t first = spec.initialStep;
    const int64_t end = schedule->endStep();
    const int64_t stride =
        std::max<int64_t>(1, (end - first + kMaxPlannedPoints - 1) / kMaxPlannedPoints);
    for (int64_t step = first; step < end; step += stride) {
        m_plannedSteps.push_back(static_cast<double>(step + 1));
        m_plannedRates.push_back(schedule->learningRate(step));
    }
    updatePlannedGraph();
    return QString();
}

void LearningRatePlot::clearPlan()
{
    m_plannedSteps.clear();
    m_plannedRates.clear();
    updatePlannedGraph();
}

void LearningRatePlot::addUsed(double step, double learningRate)
{
    m_usedSteps.push_back(step);
    m_usedRates.push_back(learningRate);
    m_usedGraph->addData(step, learningRate);
    scheduleReplot();
}

void LearningRatePlot::setUsed(const std::vector<double>& steps, const std::vector<double>& rates)
{
    const size_t count = std::min(steps.size(), rates.size());
    m_usedSteps.assign(steps.begin(), steps.begin() + static_cast<std::ptrdiff_t>(count));
    m_usedRates.assign(rates.begin(), rates.begin() + static_cast<std::ptrdiff_t>(count));
    updateUsedGraph();
    followData();
}

void LearningRatePlot::clearUsed()
{
    m_usedSteps.clear();
    m_usedRates.clear();
    updateUsedGraph();
}

void LearningRatePlot::updatePlannedGraph()
{
    m_plannedGraph->setData(QVector<double>(m_plannedSteps.begin(), m_plannedSteps.end()),
                            QVector<double>(m_plannedRates.begin(), m_plannedRates.end()), true);
    followData();
}

void LearningRatePlot::updateUsedGraph()
{
    m_usedGraph->setData(QVector<double>(m_usedSteps.begin(), m_usedSteps.end()),
                         QVector<double>(m_usedRates.begin(), m_usedRates.end()), true);
    scheduleReplot();
}

bool LearningRatePlot::dataBounds(QCPRange& steps, QCPRange& values) const
{
    bool anyStep = false;
    bool anyValue = false;
    include(steps, anyStep, m_plannedSteps);
    include(steps, anyStep, m_usedSteps);
    include(values, anyValue, m_plannedRates);
    include(values, anyValue, m_usedRates);
    return anyStep && anyValue;
}

QCPRange LearningRatePlot::valueRange(const QCPRange& fitted) const
{
    const double top = fitted.upper > 0.0 ? fitted.upper * 1.08 : 1e-4;
    return QCPRange(0.0, top);
}

QString LearningRatePlot::describeNearest(double step) const
{
    QStringList lines;
    const int planned = nearestIndex(m_plannedSteps, step);
    if (planned >= 0) {
        lines << tr("step %1: planned %2")
                     .arg(m_plannedSteps[static_cast<size_t>(planned)])
                     .arg(formatNumber(m_plannedRates[static_cast<size_t>(planned)]));
    }
    const int used = nearestIndex(m_usedSteps, step);
    if (used >= 0) {
        lines << tr("step %1: used %2")
                     .arg(m_usedSteps[static_cast<size_t>(used)])
                     .arg(formatNumber(m_usedRates[static_cast<size_t>(used)]));
    }
    return lines.join(QLatin1Char('\n'));
}

} // namespace studio::ui
