"""Model migration: conversion passes, operator coverage, compare (whole model and layer-wise), benchmark."""
