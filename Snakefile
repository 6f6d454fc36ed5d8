# CNS label-free segmentation workflow. Rules live in workflow/rules/; see README.md.
# Targets: prepare, pseudo_labels, train_stage1, train_stage2, evaluate, all (the default), ablation.
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/clip.smk"
include: "workflow/rules/sam.smk"
include: "workflow/rules/refine.smk"
include: "workflow/rules/project.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/ablation.smk"
include: "workflow/rules/targets.smk"


# The default target must be defined in this file: Snakemake resets it after each include.
rule all:
    """Everything the configuration asks for."""
    default_target: True
    input:
        ALL_TARGETS,
