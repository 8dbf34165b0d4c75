#include "ui/LossPlot.h"

#include <algorithm>

namespace studio::ui {

LossPlot::LossPlot(QWidget* parent) : StepPlot(parent)
{
    setObjectName(QStringLiteral("lossPlot"));
    yAxis->setLabel(tr("loss"));

    m_rawGraph = addGraph();
    m_rawGraph->setName(tr("loss"));
    m_rawGraph->setPen(QPen(QColor(120, 160, 220, 150), 1));

    m_smoothedGraph = addGraph();
    m_smoothedGraph->setName(tr("smoothed"));
    m_smoothedGraph->setPen(QPen(QColor(20, 70, 170), 2));
}

void LossPlot::addPoint(double step, double loss)
{
    m_steps.push_back(step);
    m_raw.push_back(loss);
    appendSmoothed(loss);
    m_rawGraph->addData(step, loss);
    m_smoothedGraph->addData(step, m_smoothed.back());
    scheduleReplot();
}

void LossPlot::setPoints(const std::vector<double>& steps, const std::vector<double>& losses)
{
    clear();
    const size_t count = std::min(steps.size(), losses.size());
    m_steps.assign(steps.begin(), steps.begin() + static_cast<std::ptrdiff_t>(count));
    m_raw.assign(losses.begin(), losses.begin() + static_cast<std::ptrdiff_t>(count));
    rebuildSmoothed();
    followData();
}

void LossPlot::clear()
{
    m_steps.clear();
    m_raw.clear();
    rebuildSmoothed();
    followData();
}

void LossPlot::setSmoothing(double weight)
{
    m_smoothing = std::clamp(weight, 0.0, 0.999);
    rebuildSmoothed();
}

void LossPlot::appendSmoothed(double loss)
{
    m_average = m_smoothing * m_average + (1.0 - m_smoothing) * loss;
    m_pastWeight *= m_smoothing;
    // Dividing by the weight the real points have so far removes the pull towards the
    // average's start value of 0.
    const double debiased = m_pastWeight < 1.0 ? m_average / (1.0 - m_pastWeight) : loss;
    m_smoothed.push_back(debiased);
}

// After a change of all points or of the weight: the whole average again, in one redraw.
void LossPlot::rebuildSmoothed()
{
    m_smoothed.clear();
    m_average = 0.0;
    m_pastWeight = 1.0;
    for (double loss : m_raw) {
        appendSmoothed(loss);
    }

    const QVector<double> keys(m_steps.begin(), m_steps.end());
    m_rawGraph->setData(keys, QVector<double>(m_raw.begin(), m_raw.end()), true);
    m_smoothedGraph->setData(keys, QVector<double>(m_smoothed.begin(), m_smoothed.end()), true);
    scheduleReplot();
}

bool LossPlot::dataBounds(QCPRange& steps, QCPRange& values) const
{
    bool anyStep = false;
    bool anyValue = false;
    include(steps, anyStep, m_steps);
    include(values, anyValue, m_raw);
    include(values, anyValue, m_smoothed);
    return anyStep && anyValue;
}

QString LossPlot::describeNearest(double step) const
{
    const int index = nearestIndex(m_steps, step);
    if (index < 0) {
        return QString();
    }
    return tr("step %1\nloss %2\nsmoothed %3")
        .arg(m_steps[static_cast<size_t>(index)])
        .arg(formatNumber(m_raw[static_cast<size_t>(index)]),
             formatNumber(m_smoothed[static_cast<size_t>(index)]));
}

} // namespace studio::ui
