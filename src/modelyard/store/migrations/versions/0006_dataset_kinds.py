"""datasets may hold object-detection, multilabel-classification and text-classification versions

Revision ID: 0006_dataset_kinds
Revises: 0005
"""

from alembic import op

revision = "0006_dataset_kinds"
down_revision = "0005"
branch_labels = None
depends_on = None

OLD = "kind IN ('tabular','image-classification')"
NEW = ("kind IN ('tabular','image-classification','object-detection','multilabel-classification',"
       "'text-classification')")


def _replace(condition: str) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        # SQLite cannot alter a CHECK constraint, so batch mode copies the table and drops the old one; dropping a
        # table that dataset_versions rows refer to fails with foreign keys on (and they cannot be switched off
        # inside the migration's transaction), so those rows step aside while the table is copied
        op.execute("CREATE TEMP TABLE _dataset_versions_aside AS SELECT * FROM dataset_versions")
        op.execute("DELETE FROM dataset_versions")
    with op.batch_alter_table("datasets", recreate="auto") as batch:
        batch.drop_constraint(op.f("ck_datasets_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_datasets_kind"), condition)
    if sqlite:
        op.execute("INSERT INTO dataset_versions SELECT * FROM _dataset_versions_aside")
        op.execute("DROP TABLE _dataset_versions_aside")


def upgrade() -> None:
    _replace(NEW)


def downgrade() -> None:
    _replace(OLD)
