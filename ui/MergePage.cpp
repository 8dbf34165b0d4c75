#include "ui/MergePage.h"

#include <QLabel>
#include <QVBoxLayout>

namespace studio::ui {

MergePage::MergePage(QWidget* parent) : QWidget(parent)
{
    auto* layout = new QVBoxLayout(this);
    layout->addWidget(new QLabel(QStringLiteral("MergePage"), this));
}

} // namespace studio::ui
