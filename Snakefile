# CNS label-free segmentation workflow. Rules live in workflow/rules/; see README.md.
include: "workflow/rules/common.smk"
include: "workflow/rules/targets.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/prepare.smk"
